"""Where the CSMS keeps its history: the OCPP message log and its projections."""
