"""The charge point simulator: a fleet of OCPP 1.6J charge points driven by scenario scripts."""
