"""Everything that runs ONE trial, independent of Ray.

- ``recipe``: :class:`ProxyRecipe`, the proxy-training settings (part of a trial's identity).
- ``datasets``: :func:`load_dataset` for digits (offline), CIFAR-10/100 and ImageFolder trees.
- ``train``: :func:`train_proxy`, the lean seeded proxy trainer.
- ``measure``: :func:`measure_speed`, :func:`device_kind`, :func:`profile_model`.
- ``runner``: :func:`run_trial`, measure then train, reporting through a callback.
"""
