"""The charging-station management system: an OCPP 1.6J central system on trio."""
