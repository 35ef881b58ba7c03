"""Detections: Sigma rules evaluated on the event stream, and alerts grouped into incidents.

Modules, in flow order:
- sigma/: load rules with pySigma, compile them to matchers, match events, correlate.
- ml/: anomaly detection with scikit-learn: windowed features per entity, per-tenant models,
  thresholds from a target alert rate, alerts that say why.
- rules/: the Sigma rules govsoc ships (its own; SigmaHQ's come from configured directories).
- incidents/: group alerts into incidents (grouping), the lifecycle and its audit trail (lifecycle),
  SLA and regulatory clocks (clocks), and noise control (noise).
"""
