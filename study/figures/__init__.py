"""Plotting shared by the dashboard's per-trial curves and the report: matplotlib, fonts for any script."""
