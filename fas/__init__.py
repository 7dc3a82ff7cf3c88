"""Face anti-spoofing on Ray."""
