"""``trainer fit``'s options and the configs they make, both ways: the one map between them.

An option goes to the config (``TrainConfig`` or ``trainer.data.DataConfig``) that has a
field of its name; ``--seed`` seeds both, ``--beta1/--beta2`` are ``betas``, ``--compile``
is ``compile``.  The way back, :func:`final_options`, gives each option the value the run
uses, for the run folder's config.yaml.
"""
from __future__ import annotations

import dataclasses

from trainer.config import DEFAULT_PRESET, ConfigError, TrainConfig, adam_betas, make_configs

#: Options that are not settings of the run: what ``trainer fit`` does with the folder.
ONE_OFF = ("resume",)


def config_changes(options: dict) -> tuple[dict, dict]:
    """(TrainConfig changes, DataConfig changes) of ``trainer fit``'s option values
    (click parameter name -> value, None: not given), less ``preset``, ``resume`` and
    ``init_from``, which are not config fields.  ConfigError on a bad --online-jpeg-quality."""
    from blurgen.physics.realism import RealismError, parse_range
    from trainer.data import DataConfig

    options = {k: v for k, v in options.items() if k not in ("preset", "resume", "init_from")}
    beta1, beta2, compile_ = options.pop("beta1", None), options.pop("beta2", None), options.pop("compile_", None)
    data_names = {f.name for f in dataclasses.fields(DataConfig)}
    data = {k: options.pop(k) for k in list(options) if k in data_names}
    data["shards"] = tuple(data.get("shards") or ()) or None
    train = dict(options, compile=compile_)
    if data.get("seed") is not None:
        train["seed"] = data["seed"]
    if beta1 is not None or beta2 is not None:
        train["betas"] = adam_betas(beta1, beta2)
    try:
        data["online_jpeg_quality"] = parse_range(data.get("online_jpeg_quality"), "jpeg_quality")
    except RealismError as exc:
        raise ConfigError(exc.spelled(prefix="online-")) from None
    return train, data


def configs_of(options: dict):
    """(TrainConfig, DataConfig) of a new run with ``trainer fit``'s option values: the preset's
    (``options["preset"]``, else the default one) with the values given on top."""
    train, data = config_changes(options)
    return make_configs(options.get("preset") or DEFAULT_PRESET, train, data)


def final_options(train_cfg: TrainConfig, data_cfg, preset: str | None, init_from) -> dict:
    """Every ``trainer fit`` option (click parameter name) -> the value a run with these
    configs uses, as the command line writes it (``--mix 2:1``, ``--online-jpeg-quality
    70-95``); the inverse of :func:`configs_of`.  ``preset`` as given (None: unknown, as for
    a resumed run whose command named none).  Not the one-off ``resume``."""
    values = {**{f.name: getattr(train_cfg, f.name) for f in dataclasses.fields(train_cfg)},
              **{f.name: getattr(data_cfg, f.name) for f in dataclasses.fields(data_cfg)}}
    values.update(preset=preset, init_from=init_from, compile_=train_cfg.compile,
                  beta1=train_cfg.betas[0], beta2=train_cfg.betas[1], mix="{}:{}".format(*data_cfg.mix))
    quality = data_cfg.online_jpeg_quality
    values["online_jpeg_quality"] = None if quality is None else "{}-{}".format(*quality)
    return values
