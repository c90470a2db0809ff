"""What people type: command text and phone numbers."""
