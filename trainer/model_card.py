"""The model card of a model folder (its README.md), and what it says of the run's data.

The card is made from the folder's config.json alone (``trainer.model_folder``), so
everything it says is also there for a program to read.  It says only what the
checkpoint recorded or what can be derived from it: where a checkpoint does not
record something (the --preset flag, the data settings of an old best.pt), the card
says what it derived it from, or that it is unknown.
"""
from __future__ import annotations

import os
from pathlib import Path

from trainer.checkpoint import CheckpointError
from trainer.errors import TrainerError


def recorded_fingerprints(checkpoint_path: str | os.PathLike, state: dict) -> dict | None:
    """{folder: fingerprint} the run recorded (trainer.provenance): the checkpoint's own
    (last.pt), else those of the last.pt beside a best.pt, else None."""
    import trainer.checkpoint as checkpoint
    from trainer.run_folder import LAST

    prints = (state.get("data") or {}).get("fingerprints")
    if prints is not None:
        return prints
    beside = Path(checkpoint_path).with_name(LAST)
    if state.get("kind") != "generator" or not beside.is_file():
        return None
    try:
        return (checkpoint.load(beside).get("data") or {}).get("fingerprints")
    except CheckpointError:
        return None


def describe_data_folders(data_config: dict | None, fingerprints: dict | None) -> dict[str, dict]:
    """{shard folder: {"made_by", "blur", "realism", "matches_training", "note"}} for each
    shard folder of ``data_config`` (training and validation), read from the folder's
    manifests where it is readable here.  ``matches_training``: True / False when the
    folder's fingerprint equals / differs from the one the run recorded, None when the run
    recorded none or the folder cannot be read.  The checkpoint holds only the paths."""
    from blurgen.errors import BlurgenError
    from blurgen.shards import folder_manifests
    from trainer.provenance import shard_fingerprint

    if data_config is None:
        return {}
    folders = [*(data_config.get("shards") or []), *([data_config["val_shards"]] if data_config.get("val_shards")
                                                     else [])]
    out = {}
    for folder in dict.fromkeys(str(f) for f in folders):
        try:
            manifests = folder_manifests(folder)
            args = next(iter(manifests.values())).get("arguments") or {}
            now = shard_fingerprint(folder)
        except (BlurgenError, TrainerError, OSError) as e:
            out[folder] = {"made_by": None, "blur": None, "realism": None, "matches_training": None,
                           "note": f"not readable at export ({str(e).splitlines()[0]}): blur and realism unknown"}
            continue
        then = (fingerprints or {}).get(folder)
        try:
            made_by = _made_by(args)
        except (KeyError, TypeError, ValueError) as e:   # a manifest of another version
            out[folder] = {"made_by": None, "blur": None, "realism": None, "matches_training": None,
                           "note": f"its manifest's arguments are not ones this toolkit reads ({e!r}): "
                                   "blur and realism unknown"}
            continue
        out[folder] = {**made_by, "matches_training": None if then is None else then == now, "note": None}
    return out


def _made_by(args: dict) -> dict:
    """The command, blur and realism a shard folder's manifest arguments record."""
    from blurgen.modes import recorded_mode
    from blurgen.physics.realism import Realism

    command = args.get("command")
    if command == "average":
        blur = "frames of a video averaged (blurgen average; docs/video.md)"
    elif command == "blurgen import-pairs":
        blur = "imported pairs (blurgen import-pairs): the blur is whatever made them"
    else:
        mode = recorded_mode(args)
        command = "blurgen synthesize"
        blur = f"{mode.name}: {mode.describe(args)}"
    return {"made_by": command or "blurgen synthesize", "blur": blur,
            "realism": Realism.from_arguments(args).labels()}


def closest_preset(train_config: dict, data_config: dict | None) -> tuple[str, list[tuple[str, object, object]]]:
    """(preset, [(setting, the run's value, the preset's)]) for the preset of
    ``trainer.config.PRESETS`` that differs from the run's recorded settings in the fewest
    of the settings any preset changes (the first listed on a tie).  Checkpoints do not
    record ``--preset``; this is what their settings say."""
    from trainer.config import PRESETS, make_configs, to_primitive

    train_keys = {k for p in PRESETS.values() for k in p.train}
    data_keys = {k for p in PRESETS.values() for k in p.data} if data_config is not None else set()
    best = None
    for name in PRESETS:
        train, data = (to_primitive(c) for c in make_configs(name))
        differences = [(k, train_config.get(k), train[k]) for k in sorted(train_keys) if train_config.get(k) != train[k]]
        differences += [(k, data_config.get(k), data[k]) for k in sorted(data_keys) if data_config.get(k) != data[k]]
        if best is None or len(differences) < len(best[1]):
            best = (name, differences)
    return best


def _score_label(key: str) -> str | None:
    """What the score ``key`` of ``trainer.evaluate.mean_scores`` is (metric, convention), or None."""
    from trainer.metrics import DESCRIPTIONS

    if key == "sharp_psnr":
        return f"sharp inputs put through the generator vs themselves, mean ({DESCRIPTIONS['psnr']})"
    if key == "sharp_psnr_min":
        return f"sharp inputs put through the generator vs themselves, worst ({DESCRIPTIONS['psnr']})"
    base = key.removeprefix("input_")
    base = "ssim_skimage" if base == "ssim" else base
    if base not in DESCRIPTIONS:
        return None
    return ("blurred input vs sharp" if key.startswith("input_") else "restored vs sharp") + f" ({DESCRIPTIONS[base]})"


def validation_set(train_config: dict, data_config: dict | None) -> tuple[str, str, str]:
    """(the set ``trainer fit`` validated on, the scale of its images, whether it was held
    out of training and why), from the run's recorded settings (trainer.data.val_pairs)."""
    from trainer.heldout import shards_held_out

    if data_config is None:
        unknown = "unknown: the checkpoint does not record its data settings"
        return "the run's validation pairs (the checkpoint does not record which)", unknown, unknown
    if data_config.get("val_shards"):
        folder = data_config["val_shards"]
        held = shards_held_out(data_config, folder)
        return (f"the shard folder {folder} (--val-shards), whole samples", "as stored in the shards (no resize)",
                ("yes: " if held[0] else "no: ") + held[1])
    if data_config.get("gopro"):
        return (f"GoPro test/ of {data_config['gopro']} ({data_config.get('gopro_blur')} frames)",
                f"frames resized x{data_config.get('gopro_scale'):g} (area averaging; --gopro-scale)",
                "yes: training draws GoPro pairs from train/ only (its best.pt was chosen on these pairs)")
    shards = data_config.get("shards") or []
    if not shards:
        unknown = "unknown: the recorded data settings name no validation data"
        return "unknown pairs", unknown, unknown
    held = shards_held_out(data_config, shards[0])
    return (f"the last shard of {shards[0]}, whole samples", "as stored in the shards (no resize)",
            ("yes: " if held[0] else "no: ") + held[1])


def _value(value) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 10 else f"{value:.2f}"
    return str(value)


def model_card(config: dict, *, files: tuple[str, str], architecture: dict) -> str:
    """README.md of a model folder: what the generator is, how it was trained (steps, preset,
    losses, data) and the scores its checkpoint carries, each with its metric, protocol,
    scale and whether it was held out.  ``config``: config.json's dict
    (``trainer.model_folder.make_config``); ``files``: the names of the weights and the
    config file; ``architecture``: the Generator's keyword arguments."""
    weights, config_name = files
    train, data = config.get("train_config") or {}, config.get("data_config")
    arch = ", ".join(f"{k}={v!r}" for k, v in architecture.items())
    lines = [f"# DeblurGAN generator, step {config['step']}", "",
             f"Exported by `trainer export --model-folder` from `{config['checkpoint']['path']}` "
             f"(a {config['checkpoint']['kind']} checkpoint).  Files: `{weights}` (the generator's "
             f"state dict, safetensors), `{config_name}` (format `{config['format']}` version "
             f"{config['format_version']}: Generator arguments, training settings, scores), this card.", "",
             "## Use", "",
             "```sh", "trainer deblur --model THIS_FOLDER photo.png --out restored/", "```", "",
             "```python", "from trainer import load_generator", 'generator = load_generator("THIS_FOLDER")',
             "```", "",
             "Input and output: float32 (N, 3, H, W) RGB in [-1, 1], H and W multiples of 4 "
             "(`trainer deblur` pads other sizes; docs/export.md).", "",
             "## Model", "", f"`trainer.models.Generator({arch})`", "",
             "## Training", ""]
    planned = config.get("planned_steps")
    lines.append(f"- steps: {config['step']} generator steps" + (f" of {planned} planned" if planned else ""))
    preset, differences = closest_preset(train, data)
    how = ("its recorded settings are the preset's" if not differences else "closest; differs in " + ", ".join(
        f"{k} {v!r} (preset: {p!r})" for k, v, p in differences))
    lines.append(f"- preset: {preset} ({how}; checkpoints do not record --preset, this is derived from the settings)")
    lines.append(f"- content loss: {train.get('content_loss')}, weight {train.get('content_weight')}; adversarial "
                 f"weight {train.get('adversarial_weight')} (WGAN-GP, {train.get('gradient_penalty')} penalty, "
                 f"weight {train.get('gp_weight')})")
    lines += _data_lines(data, config.get("data_folders") or {})
    lines += ["", "## Scores", ""]
    lines += _score_lines(config, train, data)
    return "\n".join(lines) + "\n"


def _data_lines(data: dict | None, folders: dict) -> list[str]:
    if data is None:
        return ["- data: not recorded by the checkpoint"]
    a, b = data.get("mix") or (2, 1)
    lines = [f"- data: synthetic:GoPro draws mixed {a}:{b}; {data.get('crop')}x{data.get('crop')} crops, "
             f"batch {data.get('batch_size')}, flips {'on' if data.get('flip') else 'off'}; "
             f"identity pairs (sharp in, sharp out): {data.get('sharp_fraction', 0):g} of the draws"]
    gopro = (f"{data['gopro']} ({data.get('gopro_blur')} frames, resized x{data.get('gopro_scale'):g})"
             if data.get("gopro") else "none")
    lines.append(f"- GoPro: {gopro}" + ("" if b or not data.get("gopro") else " (validation only: mix share 0)"))
    if data.get("online"):
        from blurgen.physics.realism import Realism

        realism = Realism(linear=bool(data.get("online_linear")), saturate=bool(data.get("online_saturate")),
                          noise=bool(data.get("online_noise")), camera=data.get("online_camera"),
                          jpeg_quality=None if data.get("online_jpeg_quality") is None
                          else tuple(data["online_jpeg_quality"])).labels()
        lines.append(f"- online blur: yes, mode {data.get('online_mode')}"
                     + (f" ({data['online_mode_settings']})" if data.get("online_mode_settings") else "")
                     + f", kernel size {data.get('online_kernel_size') or 'crop/4'}; realism: "
                     + (", ".join(realism) or "none") + " (the shards' sharp images only are read)")
    else:
        lines.append("- online blur: no (the shards' stored pairs)")
    for folder in data.get("shards") or []:
        lines.append(f"- shard folder {folder}: " + _folder_line(folders.get(str(folder))))
    if data.get("val_shards"):
        lines.append(f"- validation shard folder {data['val_shards']}: " + _folder_line(folders.get(str(data['val_shards']))))
    return lines


def _folder_line(record: dict | None) -> str:
    if record is None:
        return "not described at export"
    if record.get("made_by") is None:
        return record.get("note") or "blur and realism unknown"
    match = {True: "the folder matched the fingerprint the run recorded",
             False: "the folder has CHANGED since the run recorded its fingerprint: described as it is now",
             None: "not checked against the run (no fingerprint recorded)"}[record.get("matches_training")]
    return (f"made by {record['made_by']}; blur {record['blur']}; realism: "
            f"{', '.join(record.get('realism') or []) or 'none'} (read from its manifest at export; {match})")


def _score_lines(config: dict, train: dict, data: dict | None) -> list[str]:
    scored_on, scale, held_out = validation_set(train, data)

    def protocol(step, count) -> str:
        limit = train.get("val_limit")
        pairs = (f"{int(count)} pairs of" if count else f"up to {limit} pairs spread over" if limit
                 else "all pairs of")
        return (f"- protocol: trainer fit's validation at step {step}: mean over {pairs} {scored_on}; each image "
                "restored whole (tiles of 2048 px beyond that), scored over the whole image, no border crop, "
                "data range 255")

    scores, best = config.get("scores"), config.get("best")
    if not scores and not best:
        return ["The checkpoint carries no scores (no validation had run)."]
    if scores:
        lines = [protocol(config["step"], scores.get("count"))]
        rows = [(k, v) for k, v in scores.items() if k != "count"
                and not (k.endswith("ssim_skimage") and scores.get(k.replace("ssim_skimage", "ssim")) == v)]
    else:
        which = ("the same step" if best.get("step") == config["step"]
                 else f"its last step, {config['step']}, not of the best")
        lines = [protocol(best.get("step"), None) + " (the best validation the training checkpoint records; "
                 f"its generator is that of {which})"]
        rows = [(k, v) for k, v in best.items() if k != "step"]
    lines += [f"- scale: {scale}", f"- held out: {held_out}", "",
              "| score | value | metric |", "|---|---|---|"]
    for key, value in rows:
        label = _score_label(key) or "no description known for this key"
        lines.append(f"| {key} | {_value(value)} | {label} |")
    return lines
