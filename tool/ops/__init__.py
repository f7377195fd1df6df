"""Running Tally as a service: health and readiness, guard rails, the doctor, heartbeats, maintenance."""
