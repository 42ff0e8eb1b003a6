"""`train_read(cfg)`: a run of train.task = "read", top to bottom: a sequence model (crnn)
learns to read whole numbers with the CTC loss, from lines composed on the device.

seed and device -> the base digits (data.name) and fixed val/test lines -> model, optimizer,
schedule -> the run directory -> resume -> for epoch: for each batch of fresh lines: step ->
evaluate (CTC loss, sequence accuracy, character error rate), checkpoint, log, early stopping
-> the reported weights, the final test, summary.json.

An epoch draws as many digits as the training split holds (in lines of data.line_min_digits
to data.line_max_digits), from a generator seeded by (train.seed, epoch): a resumed run draws
the lines it would have drawn. The val/test lines (3-8 digits, no touching pairs) are composed
on the CPU from a fixed seed, so their numbers compare across runs, seeds and devices.

The helpers of the classification loop (seeding, the best epoch, checkpoints, the summary) are
shared as `loop.*`: a module import, since loop.train hands read runs over to this one.
"""

from __future__ import annotations

import dataclasses
import time

import torch
from rich.console import Console

from digitlab.config import Config
from digitlab.data import Dataset, Split
from digitlab.data.augment import Augment
from digitlab.data.balance import epoch_generator
from digitlab.data.lines import Lines, compose
from digitlab.errors import ConfigError
from digitlab.i18n import _, ngettext
from digitlab.io import write_json
from digitlab.models.shifted import with_test_shifts
from digitlab.training import distributed, loop, setup
from digitlab.training.guards import Guard
from digitlab.training.optim import OPTIMIZERS, Schedule, current_lr, param_groups
from digitlab.training.progress import RunLog, header, make_progress, metrics_text
from digitlab.training.rundir import claim_run_dir, new_state, restore_run
from digitlab.training.sequence import (
    cer,
    ctc_loss,
    exact_match,
    greedy,
    greedy_exact,
    steps_for,
)
from digitlab.training.setup import check_runtime, load_data, training_splits
from digitlab.training.step import make_autocast
from digitlab.training.steplog import StepLog

EVAL_DIGITS = (3, 8)  # digits per val/test line
EVAL_LINES = {"val": 1000, "test": 2000}  # at most; else one line per 2 digits of the split
EVAL_SEED = 16  # the val/test lines: one fixed draw, whatever train.seed
EVAL_CHUNK = 250  # val/test lines composed at once
EVAL_BATCH = 50  # lines per evaluation batch, of similar widths: small batches run faster
LINES_OFFSET = 104729  # keeps the stream of training lines apart from other epoch streams
CHUNK = 8  # batches composed at once and sorted by width: little padding in each


def standardize(images: torch.Tensor, cfg: Config) -> torch.Tensor:
    """The model's input: lines in [0, 1] under data.mean and data.std, as digits are."""
    return (images - cfg.data.mean) / cfg.data.std


def eval_count(name: str, split: Split) -> int:
    """Lines in the val or test set: 2,000 test lines from MNIST's 10,000 test digits."""
    return min(EVAL_LINES[name], max(1, len(split) // 2))


def eval_lines(digits: torch.Tensor, labels: torch.Tensor, count: int,
               device: torch.device) -> list[Lines]:
    """`count` fixed lines in batches of similar widths, composed on the CPU (the same lines on
    every device)."""
    gen = torch.Generator().manual_seed(EVAL_SEED)
    batches = []
    for start in range(0, count, EVAL_CHUNK):
        lines = compose(digits.cpu(), labels.cpu(), min(EVAL_CHUNK, count - start), gen,
                        *EVAL_DIGITS)
        by_width = lines.widths.argsort()
        for i in range(0, len(lines), EVAL_BATCH):
            batch = lines.select(by_width[i:i + EVAL_BATCH])
            batches.append(dataclasses.replace(batch, images=batch.images.to(device)))
    return batches


def train_chunk(digits: torch.Tensor, labels: torch.Tensor, batches: int, gen: torch.Generator,
                cfg: Config, augment: Augment) -> list[Lines]:
    """`batches` batches of fresh training lines: composed together, grouped by width (so a
    batch carries little padding), in a random order."""
    size = cfg.data.batch_size
    lines = compose(digits, labels, batches * size, gen, cfg.data.line_min_digits,
                    cfg.data.line_max_digits, cfg.data.line_touching, augment)
    by_width = lines.widths.argsort()
    order = torch.randperm(batches, device=gen.device, generator=gen).tolist()
    return [lines.select(by_width[i * size:(i + 1) * size]) for i in order]


@torch.no_grad()
def evaluate_lines(model: torch.nn.Module, batches: list[Lines], cfg: Config,
                   device: torch.device) -> dict:
    """Mean CTC loss, exact-match (sequence) accuracy and character error rate of greedy
    decoding; the lines read and their truth."""
    was_training = model.training
    model.eval()
    loss_sum, read, truth = 0.0, [], []
    for lines in batches:
        logits = model(standardize(lines.images, cfg)).float()
        steps = steps_for(lines.widths, model.columns_per_step)
        loss = ctc_loss(logits, steps.to(device), lines.targets.to(device),
                        lines.lengths.to(device))
        loss_sum += float(loss) * len(lines)
        read += [decoded.labels for decoded in greedy(logits, steps)]
        truth += lines.texts
    model.train(was_training)
    return {"loss": loss_sum / len(truth), "accuracy": exact_match(read, truth),
            "cer": cer(read, truth), "num_lines": len(truth), "read": read, "truth": truth}


def optimizer_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                   scaler: torch.amp.GradScaler, schedule: Schedule, cfg: Config) -> None:
    """Clip (train.clip_norm, clip_value), step, and advance the schedule."""
    if cfg.train.clip_norm or cfg.train.clip_value:
        scaler.unscale_(optimizer)  # clip true gradients, not scaled ones
        if cfg.train.clip_norm:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.train.clip_norm)
        if cfg.train.clip_value:
            torch.nn.utils.clip_grad_value_(model.parameters(), cfg.train.clip_value)
    scaler.step(optimizer)
    scaler.update()
    optimizer.zero_grad(set_to_none=True)
    schedule.after_batch()


def split_record(results: dict[str, dict]) -> dict:
    """metrics.jsonl's evaluation fields: loss, accuracy (= sequence accuracy) and CER."""
    record = {}
    for name, result in results.items():
        record.update({f"{name}_loss": result["loss"], f"{name}_accuracy": result["accuracy"],
                       f"{name}_sequence_accuracy": result["accuracy"],
                       f"{name}_cer": result["cer"]})
    return record


def train_read(cfg: Config, fallback: bool = False, console: Console | None = None,
               resume: bool = False, dataset: Dataset | None = None,
               init: torch.nn.Module | None = None) -> dict:
    """train() for train.task = "read" (training/loop.py hands it over); same arguments."""
    console = console or Console(highlight=False, soft_wrap=True, markup=False)
    loop.prepare_process(cfg.train.seed)
    device = distributed.resolve_device(cfg.train.device)
    world = distributed.setup(device)
    if world.distributed:
        raise ConfigError(_("train.task = 'read' trains in one process; run it without "
                            "torchrun"))
    check_runtime(cfg, device)

    # ---- data: the base digits on the device; fixed val/test lines --------------------------
    dataset, cfg, notice = load_data(cfg, fallback, console, dataset)
    num_classes = len(dataset.classes)
    train_split, val = training_splits(dataset, cfg)
    digits, labels = train_split.images.to(device), train_split.labels.to(device)
    augment = Augment.from_config(cfg.data)
    splits = {name: eval_lines(split.images, split.labels, eval_count(name, split), device)
              for name, split in (("val", val), ("test", dataset.test)) if split}
    num_batches = setup.line_batches(len(train_split), cfg)
    epochs = cfg.train.epochs

    # ---- model, optimizer, schedule, autocast (a scaler only for fp16) ------------------------
    model = setup.initial_model(cfg, num_classes, init).to(device)
    if cfg.train.channels_last:
        model = model.to(memory_format=torch.channels_last)
    raw_model = model
    if not hasattr(raw_model, "columns_per_step"):
        raise ConfigError(_("train.task = 'read' needs a sequence model with columns_per_step "
                            "(model.name = 'crnn')"))
    autocast = make_autocast(device, cfg.train.amp)
    optimizer = OPTIMIZERS.get(cfg.optim.name)(param_groups(model, cfg.optim), cfg.optim)
    schedule = Schedule(optimizer, cfg.sched, [num_batches] * epochs)
    scaler = torch.amp.GradScaler(device.type, enabled=cfg.train.amp == "fp16")
    if cfg.train.compile:
        model = torch.compile(model, dynamic=True)  # line widths differ batch to batch
    optimizer.zero_grad(set_to_none=True)

    with (claim_run_dir(cfg, resume, world) as run_dir,
          loop.deterministic(cfg.train.deterministic)):
        console.print(header(dataset, train_split, val, cfg, device, run_dir))
        state = (restore_run(run_dir, cfg, raw_model, optimizer, schedule, scaler, console)
                 if resume else new_state())
        log, guard = RunLog(console, run_dir, cfg, True), Guard(run_dir, True, console)
        if resume:
            log.restart(state["history"], cfg)
        steps_log = StepLog(run_dir, cfg.train, True, schedule, optimizer, log.tensorboard)
        meta = dict(loop.checkpoint_meta(cfg, dataset), task="read",
                    columns_per_step=raw_model.columns_per_step)
        check_every = Guard.interval(device, world, cfg.train.log_interval)
        stopped = False
        with make_progress(console) as progress:
            epoch_bar = progress.add_task("epochs", total=epochs, completed=state["epoch"])
            batch_bar = progress.add_task("batches", total=num_batches)
            for epoch in range(state["epoch"], epochs):
                gen = epoch_generator(cfg.train.seed, epoch, LINES_OFFSET, device)
                model.train()
                progress.reset(batch_bar, total=num_batches,
                               description=_("epoch {epoch}").format(epoch=epoch + 1))
                loss_sum = torch.zeros((), device=device)
                correct = torch.zeros((), dtype=torch.long, device=device)
                seen, started, pending = 0, time.perf_counter(), []
                for batch in range(num_batches):
                    if not pending:  # composing is a host sync or two: once per CHUNK batches
                        pending = train_chunk(digits, labels, min(CHUNK, num_batches - batch),
                                              gen, cfg, augment)
                    lines = pending.pop()
                    steps = steps_for(lines.widths, raw_model.columns_per_step).to(device)
                    targets, lengths = lines.targets.to(device), lines.lengths.to(device)
                    with autocast():
                        logits = model(standardize(lines.images, cfg))
                    loss = ctc_loss(logits, steps, targets, lengths)
                    scaler.scale(loss).backward()
                    optimizer_step(model, optimizer, scaler, schedule, cfg)
                    state["batches"] += 1
                    loss_sum += loss.detach() * len(lines)
                    correct += greedy_exact(logits, steps, targets, lengths,
                                            cfg.data.line_max_digits).sum()
                    seen += len(lines)
                    steps_log(epoch, batch, loss, state["train_seconds"], started)
                    if batch % check_every == 0:  # a host sync: only on the steps checked
                        log.batch(epoch, batch, num_batches,
                                  guard.batch(loss, logits.detach().flatten(0, 1), epoch, batch))
                        progress.update(batch_bar, metrics=metrics_text(
                            float(loss_sum) / seen, float(correct) / seen, current_lr(optimizer)))
                    progress.advance(batch_bar)
                seconds = loop.elapsed(started, device)

                # ---- end of epoch: evaluate; only good weights are checkpointed; log -------
                results = {name: evaluate_lines(model, batches, cfg, device)
                           for name, batches in splits.items()}
                record = {"epoch": epoch + 1, "batches": state["batches"],
                          "train_loss": float(loss_sum) / seen,
                          "train_accuracy": float(correct) / seen, **split_record(results),
                          "lr": current_lr(optimizer), "epoch_seconds": seconds}
                schedule.after_epoch(record.get("val_loss"))
                guard.epoch(record, raw_model, epoch)
                metric, value = loop.monitored(record, cfg.train.monitor)
                is_best = loop.improved(value, state["best"], cfg.train, metric)
                loop.advance(state, record, is_best, value, seen, seconds)
                loop.save_checkpoints(run_dir, raw_model, optimizer, is_best, dict(
                    meta, epoch=epoch + 1, batches=state["batches"], metrics=record,
                    state=state, schedule=schedule.state_dict(), scaler=scaler.state_dict()))
                log(record)
                progress.advance(epoch_bar)
                if 0 < cfg.train.early_stop_patience <= state["bad_epochs"]:
                    log.early_stop(metric, state)
                    stopped = True
                    break

        # ---- the end: the weights the run reports, the final test, the summary ---------------
        loop.load_reported_weights(raw_model, run_dir)
        shifts = cfg.data.test_shifts  # read as `digitlab read` reads; and once, beside it
        test = evaluate_lines(with_test_shifts(raw_model, shifts), splits["test"], cfg, device)
        once = evaluate_lines(raw_model, splits["test"], cfg, device) if shifts else test
        console.print(_("Test sequence accuracy: {accuracy:.2f}% (character error rate "
                        "{cer:.2f}%)").format(accuracy=100 * test["accuracy"],
                                              cer=100 * test["cer"]))
        summary = loop.summarize(state, test, stopped, cfg, dataset, notice, raw_model,
                                 device, run_dir)
        summary.update(task="read", test_sequence_accuracy=test["accuracy"],
                       test_sequence_accuracy_read_once=once["accuracy"],
                       test_cer=test["cer"], test_lines=test["num_lines"],
                       test_digits=list(EVAL_DIGITS))
        write_json(run_dir / "summary.json", summary)
        log.close()
    console.print(ngettext(
        "{dataset} lines: test sequence accuracy {accuracy:.2f}% after {epochs} epoch, "
        "{seconds:.1f} s of training. Run saved to {run_dir}",
        "{dataset} lines: test sequence accuracy {accuracy:.2f}% after {epochs} epochs, "
        "{seconds:.1f} s of training. Run saved to {run_dir}", state["epoch"]).format(
        dataset=dataset.title, accuracy=100 * test["accuracy"], epochs=state["epoch"],
        seconds=state["train_seconds"], run_dir=run_dir))
    return summary

