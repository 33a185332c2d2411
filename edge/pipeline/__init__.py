"""The camera-to-label loop behind ``edge-run``, one concern per module, in data-flow order.

* :mod:`~edge.pipeline.capture`: the capture thread (newest-frame slot, reopen with backoff,
  stall watchdog);
* :mod:`~edge.pipeline.smoothing`: moving mean/median of scores, top-k and threshold;
* :mod:`~edge.pipeline.runner`: the inference loop over injected parts (:func:`run_loop`) and
  its threads (:func:`run_pipeline`);
* :mod:`~edge.pipeline.sinks` and :mod:`~edge.pipeline.writer`: where labels go, written from a
  thread of their own;
* :mod:`~edge.pipeline.stats`, :mod:`~edge.pipeline.sdnotify`, :mod:`~edge.pipeline.signals`:
  numbers, systemd, and stopping cleanly;
* :mod:`~edge.pipeline.service`: all of it opened once from :class:`RunOptions`.
"""
