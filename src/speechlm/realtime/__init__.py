"""Real-time voice interaction: the streaming full-duplex engine and its WebSocket server."""
