"""What reaches the server: the edge guards and the Slack and Retell signatures."""
