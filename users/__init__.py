"""The load path: Locust users, the streaming client, records and where they go."""
