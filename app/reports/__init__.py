"""Status reports: as-of figures, immutable snapshots, documents and charts, schedules."""
