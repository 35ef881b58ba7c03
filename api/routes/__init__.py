"""One router per resource: health, incidents, alerts, events."""
