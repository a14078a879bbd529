"""caption service: arrives with its issue (see README, 'What works today')."""
