"""What people read: renderers and templates, feedback, views, the folder a run writes."""
