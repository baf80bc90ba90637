"""Make the data a config asks for before a run starts."""
import os.path as osp

from avtoolkit.utils.dist import make_on_local_leader

__all__ = ['prepare']


def prepare(cfg, poll_seconds: float = 2.0, timeout: float = 3600.0) -> None:
    """Generate the synthetic data named by a config, if it is absent.

    * ``synthetic_data = dict(out_dir=..., num_videos=..., ...)``: arguments
      of :func:`~avtoolkit.data_prep.synthetic_av.generate_synthetic_av`
      (the pretraining demo data);
    * ``synthetic_downstream = dict(out_dir=..., layout=..., ...)``:
      arguments of
      :func:`~avtoolkit.data_prep.synthetic_layouts.generate_synthetic_downstream`
      (a downstream dataset's layout).

    Both generators skip complete data made with the same parameters.  In a
    multi-process run the process with ``LOCAL_RANK`` 0 generates and the
    others wait for its ``summary.json`` (no process group exists yet, so no
    barrier is possible), failing after ``timeout`` seconds.
    """
    spec = cfg.get('synthetic_downstream')
    if spec:
        from .synthetic_layouts import (SUMMARY_FILE,
                                        generate_synthetic_downstream)
        spec = dict(spec)
        if 'out_dir' not in spec or 'layout' not in spec:
            raise ValueError('synthetic_downstream needs "out_dir" and '
                             '"layout"')
        out_dir = spec.pop('out_dir')
        make_on_local_leader(
            lambda: generate_synthetic_downstream(out_dir, **spec),
            osp.join(out_dir, SUMMARY_FILE),
            f'synthetic {spec["layout"]} layout at {out_dir}', poll_seconds,
            timeout)
    spec = cfg.get('synthetic_data')
    if spec:
        from .synthetic_av import SUMMARY_FILE, generate_synthetic_av
        spec = dict(spec)
        if 'out_dir' not in spec:
            raise ValueError('synthetic_data needs "out_dir"')
        out_dir = spec.pop('out_dir')
        make_on_local_leader(lambda: generate_synthetic_av(out_dir, **spec),
                             osp.join(out_dir, SUMMARY_FILE),
                             f'synthetic dataset at {out_dir}', poll_seconds,
                             timeout)
