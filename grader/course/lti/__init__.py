"""The course as an LTI 1.3 tool of an LMS (Moodle, Canvas, Brightspace): the tool's keys
(keys), the launch and who it is (launch), what the book keeps of it (store), the LMS's services
(services: Assignment and Grade Services, Names and Role Provisioning) and the outbox of scores
(outbox)."""
