"""A course and its gradebook: course.toml, the book, marks as of each deadline."""
