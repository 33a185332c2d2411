"""The camera-to-label loop behind ``edge-run``, one concern per module, in data-flow order.

* :mod:`~edge.pipeline.capture`: the capture thread (newest-frame slot, reopen with backoff,
  stall watchdog);
* :mod:`~edge.pipeline.smoothing`: moving mean/median of scores, top-k and threshold;
* :mod:`~edge.pipeline.runner`: the inference loop over injected parts (:func:`run_loop`) and
  its threads (:func:`run_pipeline`);
* :mod:`~edge.pipeline.writer`: the thread that writes labels to the sinks (:mod:`edge.sinks`);
* :mod:`~edge.pipeline.stats`, :mod:`~edge.pipeline.sdnotify`, :mod:`~edge.pipeline.signals`:
  numbers, systemd, and stopping cleanly;
* :mod:`~edge.pipeline.service`: all of it opened once from :class:`RunOptions`, composed
  of one part per concern (source, model, runtime, loop, sinks).
"""
