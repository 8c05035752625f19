"""The CSMS's OCPP edge: the WebSocket server, the live connections, the handlers."""
