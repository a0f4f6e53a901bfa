"""A history checker with a nemesis (issue 21): devices of several identities sync random records through two
`syncsvc serve` instances while processes are killed, paused and restarted under them; afterwards a checker verifies
the recorded history against the final state, the Kafka stream and the push listeners.

``python -m chaos --seconds N --seed S`` (``make chaos``) runs it; tests/test_chaos.py runs a short one in
``make test``. Modules: history (the record), workload (the devices), nemesis (the faults), processes (what runs),
checker (the pure checks), run (one run from start to verdict).
"""
