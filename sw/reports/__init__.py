"""What the user sees: console tables, progress lines, JSON records with provenance, per-layer model reports
and plots."""
