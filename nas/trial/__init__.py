"""Everything that runs ONE trial, independent of Ray.

- ``recipe``: :class:`ProxyRecipe`, the proxy-training settings (part of a trial's identity).
- ``measure_settings``: :class:`MeasureSettings`, how speed is measured and the speed limits.
- ``datasets``: :func:`load_dataset` for the offline tasks, CIFAR-10/100 and ImageFolder trees.
- ``train``: :func:`train_proxy`, the lean seeded proxy trainer.
- ``measure``: :func:`measure_speed` and :func:`profile_model`.
- ``progress``: :class:`TrialProgress`, what a trial's reports have said (feasible, best accuracy,
  measured speed) and the ``Outcome`` a strategy learns.
- ``runner``: :func:`run_trial`, measure then train, reporting through a callback.
"""
