"""Every sentence and every block the app shows: cards, replies, answers, views."""
