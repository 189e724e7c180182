"""Business rules. Functions take collaborators keyword-only and raise PixwebError."""
