"""The course on the web (``grade serve``): students and staff sign in, see every mark and why,
ask for a grading of a VM; staff run the course from the browser.

A front end like grader.cli: each route turns a form or JSON into one request of grader.actions,
calls that action and renders its result (server-side pages from Jinja2 templates, with
autoescape; a JSON API with the same sessions and rules). Every rule is the action's: a route
holds no logic of its own. Sessions, CSRF tokens and signed cookies come from well-kept
libraries (starsessions; WTForms' session-bound CSRF tokens); sign-in links and sessions are
kept hashed in the book.
"""
