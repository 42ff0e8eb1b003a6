"""Write notebooks/{en,bn}/*.ipynb from the cells below: the same code cells in both
languages, English or Bengali markdown, no outputs. Edit the notebooks here, not in Jupyter.

    python tools/make_notebooks.py           # rewrite notebooks/
    python tools/make_notebooks.py --check   # exit 1 if notebooks/ is out of date (tests do this)

Needs nbformat (pip install -e '.[dev]').
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1] / "notebooks"

SETUP_DOC = {
    "en": "## Setup\n\nThe notebook trains on MNIST (downloaded once into digitlab's cache, or "
          "read from `DIGITLAB_DATA`). CI runs it on the small `digits` set bundled with "
          "scikit-learn, in seconds, by setting `DIGITLAB_NOTEBOOK_DATASET=digits`; you can do "
          "the same when you are offline.",
    "bn": "## প্রস্তুতি\n\nএই নোটবুক MNIST-এ প্রশিক্ষণ দেয় (একবার digitlab-এর ক্যাশে নামানো হয়, "
          "অথবা `DIGITLAB_DATA` থেকে পড়া হয়)। CI একে scikit-learn-এর সঙ্গে আসা ছোট `digits` "
          "সেটে কয়েক সেকেন্ডে চালায়, `DIGITLAB_NOTEBOOK_DATASET=digits` দিয়ে; ইন্টারনেট না "
          "থাকলে আপনিও তা-ই করতে পারেন।",
}

QUICKSTART = [
    ("md", {
        "en": "[বাংলা](../bn/01-quickstart.ipynb) · English\n\n# Quickstart: the tutorial, "
              "step by step, from Python\n\nThe steps of the MNIST tutorial (the data, the "
              "model, training, evaluation, predictions, your own drawing) with digitlab's "
              "Python API: `dl.train` returns a `Run` you can ask questions of. See "
              "[The Python API](../../docs/en/python-api.md) for the details.",
        "bn": "[English](../en/01-quickstart.ipynb) · বাংলা\n\n# দ্রুত শুরু: টিউটোরিয়াল, "
              "ধাপে ধাপে, Python থেকে\n\nMNIST টিউটোরিয়ালের ধাপগুলো (ডেটা, মডেল, প্রশিক্ষণ, "
              "মূল্যায়ন, ভবিষ্যদ্বাণী, আপনার নিজের আঁকা অঙ্ক) digitlab-এর Python API দিয়ে: "
              "`dl.train` একটি `Run` ফেরত দেয়, যাকে প্রশ্ন করা যায়। বিস্তারিত দেখুন "
              "[Python API](../../docs/bn/python-api.md) পাতায়।",
    }),
    ("md", SETUP_DOC),
    ("code", '''\
%matplotlib inline
# A cell that ends with a matplotlib Figure (or a PIL image) shows it.
import os

import torch
from matplotlib.figure import Figure

import digitlab as dl
from digitlab.config import apply_overrides
from digitlab.data import load_dataset
from digitlab.models import build_model

DATASET = os.environ.get("DIGITLAB_NOTEBOOK_DATASET", "mnist")  # CI: "digits"
EPOCHS = int(os.environ.get("DIGITLAB_NOTEBOOK_EPOCHS", "5"))  # the tutorial's 5
torch.manual_seed(0)
cfg = apply_overrides(dl.Config(), {"data.name": DATASET, "train.epochs": EPOCHS})'''),
    ("md", {
        "en": "## 1. The data\n\nEvery digit is a `uint8` image of 28x28 pixels, white ink on "
              "black (MNIST's polarity), with a label from 0 to 9.",
        "bn": "## ১. ডেটা\n\nপ্রতিটি অঙ্ক ২৮x২৮ পিক্সেলের একটি `uint8` ছবি, কালোর ওপর সাদা "
              "কালি (MNIST-এর মতো), আর ০ থেকে ৯-এর একটি লেবেল।",
    }),
    ("code", '''\
data = load_dataset(cfg.data)
print(f"{data.title}: {len(data.train):,} training and {len(data.test):,} test images")
print("one image:", data.train.images.dtype, tuple(data.train.images.shape[1:]))

first, labels = data.train.images[:16], data.train.labels[:16].tolist()
fig = Figure(figsize=(10, 3))
axes = fig.subplots(2, 8)
for ax, image, label in zip(axes.flat, first, labels, strict=True):
    ax.imshow(image, cmap="gray")
    ax.set_title(label)
    ax.axis("off")
fig'''),
    ("md", {
        "en": "## 2. The model\n\nThe default `model.name` is the tutorial's MLP, 784-128-64-10 "
              "with ReLU. `dl.train` builds the same model from the same config.",
        "bn": "## ২. মডেল\n\nডিফল্ট `model.name` হল টিউটোরিয়ালের MLP, ৭৮৪-১২৮-৬৪-১০, ReLU "
              "সহ। `dl.train` একই কনফিগ থেকে একই মডেল তৈরি করে।",
    }),
    ("code", '''\
model = build_model(cfg.model, num_classes=len(data.classes))
print(model)
print(f"{sum(p.numel() for p in model.parameters()):,} parameters")'''),
    ("md", {
        "en": "## 3. Train\n\n`dl.train` prints the same lines as `digitlab train` and writes "
              "a complete run directory (metrics, checkpoint, `evaluation.json`, plots, "
              "report).",
        "bn": "## ৩. প্রশিক্ষণ\n\n`dl.train` ঠিক `digitlab train`-এর মতো লাইন ছাপে এবং একটি "
              "সম্পূর্ণ রান ফোল্ডার লেখে (মেট্রিক, চেকপয়েন্ট, `evaluation.json`, প্লট, "
              "রিপোর্ট)।",
    }),
    ("code", '''\
run = dl.train(cfg)
print("run directory:", run.run_dir)'''),
    ("md", {
        "en": "## 4. Evaluate\n\n`run.summary` is `summary.json`, `run.metrics` holds one "
              "dict per epoch, and `run.plot` returns a matplotlib figure.",
        "bn": "## ৪. মূল্যায়ন\n\n`run.summary` হল `summary.json`, `run.metrics`-এ প্রতি epoch-এর "
              "একটি dict, আর `run.plot` একটি matplotlib ফিগার ফেরত দেয়।",
    }),
    ("code", '''\
print(f"test accuracy: {run.summary['test_accuracy']:.4f}")
for row in run.metrics:
    print(f"epoch {row['epoch']}: train loss {row['train_loss']:.4f}, "
          f"test accuracy {row['test_accuracy']:.2%}")
run.plot("curves")'''),
    ("code", '''\
run.plot("confusion")'''),
    ("md", {
        "en": "## 5. Predictions\n\n`run.model` is the trained `nn.Module`, in eval mode. "
              "`run.predict` takes `uint8` digits of shape `[N, 28, 28]` and returns the labels "
              "and the probabilities. Green titles are right, red ones wrong.",
        "bn": "## ৫. ভবিষ্যদ্বাণী\n\n`run.model` হল প্রশিক্ষিত `nn.Module`, eval মোডে। "
              "`run.predict` `[N, 28, 28]` আকারের `uint8` অঙ্ক নেয় এবং লেবেল ও সম্ভাবনা ফেরত "
              "দেয়। সবুজ শিরোনাম মানে ঠিক, লাল মানে ভুল।",
    }),
    ("code", '''\
print(type(run.model).__name__, "| eval mode:", not run.model.training)

images, truth = data.test.images[:24], data.test.labels[:24].tolist()
predicted, probabilities = run.predict(images)

fig = Figure(figsize=(12, 5))
axes = fig.subplots(3, 8)
rows = zip(axes.flat, images, truth, predicted, probabilities, strict=True)
for ax, image, label, guess, p in rows:
    ax.imshow(image, cmap="gray")
    ax.set_title(f"{guess} ({float(p.max()):.0%})", color="green" if guess == label else "red")
    ax.axis("off")
print(f"right: {sum(g == t for g, t in zip(predicted, truth, strict=True))} of {len(truth)}")
fig'''),
    ("md", {
        "en": "## 6. Your own drawing\n\nDraw a digit (here a 7, with PIL, black ink on white "
              "paper, like a scan), save it as a PNG and give the path to `run.predict`: it is "
              "preprocessed exactly as `digitlab predict` does. Change the strokes and try "
              "again.",
        "bn": "## ৬. আপনার নিজের আঁকা অঙ্ক\n\nএকটি অঙ্ক আঁকুন (এখানে PIL দিয়ে একটি ৭, সাদা "
              "কাগজে কালো কালি, স্ক্যানের মতো), PNG হিসেবে সংরক্ষণ করুন এবং পাথটি "
              "`run.predict`-কে দিন: `digitlab predict` যেভাবে করে ঠিক সেভাবেই প্রক্রিয়া হয়। "
              "রেখাগুলো বদলে আবার চেষ্টা করুন।",
    }),
    ("code", '''\
from PIL import Image, ImageDraw

paper = Image.new("L", (112, 112), color=255)  # white paper
ImageDraw.Draw(paper).line([(28, 24), (84, 24), (48, 96)], fill=0, width=10)  # a 7
paper.save("my_seven.png")

labels, probabilities = run.predict(["my_seven.png"])
top = probabilities[0].topk(3)
print(f"my_seven.png reads as: {labels[0]}")
print("top 3:", ", ".join(f"{run.classes[i]} {float(p):.0%}" for p, i in zip(*top, strict=True)))
paper  # a PIL image shows itself'''),
    ("md", {
        "en": "## 7. Open the run again\n\n`dl.load_run` gives the same `Run` back from the "
              "disk, in a new session or for a run trained with `digitlab train`.",
        "bn": "## ৭. রানটি আবার খুলুন\n\n`dl.load_run` ডিস্ক থেকে একই `Run` ফিরিয়ে দেয়, নতুন "
              "সেশনে বা `digitlab train` দিয়ে প্রশিক্ষিত রানের জন্যও।",
    }),
    ("code", '''\
again = dl.load_run(run.run_dir)
print("same run:", again == run, "| test accuracy", again.summary["test_accuracy"])'''),
    ("md", {
        "en": "## 8. A CNN: the config from `set=` or from a TOML file\n\n`set=` takes the "
              "same `section.key` overrides as `--set`; `dl.Config.from_toml` reads a TOML file "
              "such as `../../configs/fast99.toml`, as `--config` does. Here both describe "
              "the same CNN.",
        "bn": "## ৮. একটি CNN: কনফিগ `set=` থেকে বা একটি TOML ফাইল থেকে\n\n`set=` নেয় "
              "`--set`-এর মতোই `section.key` পরিবর্তন; `dl.Config.from_toml` একটি TOML ফাইল "
              "পড়ে, যেমন `../../configs/fast99.toml`, ঠিক `--config`-এর মতো। এখানে দুটোই একই "
              "CNN বর্ণনা করে।",
    }),
    ("code", '''\
from pathlib import Path

Path("cnn.toml").write_text(f"""
[data]
name = "{DATASET}"

[model]
name = "cnn"

[train]
epochs = 3
""", encoding="utf-8")
from_file = dl.Config.from_toml("cnn.toml")  # or "../../configs/fast99.toml", a tuned CNN
overrides = {"data.name": DATASET, "model.name": "cnn", "train.epochs": 3}
print("the TOML file and set= give the same config:",
      from_file == apply_overrides(dl.Config(), overrides))

cnn = dl.train(dl.Config(), set=overrides)  # or dl.train(from_file)
print(f"cnn test accuracy: {cnn.summary['test_accuracy']:.4f} "
      f"(the MLP: {run.summary['test_accuracy']:.4f})")
cnn.plot("curves")'''),
    ("md", {
        "en": "## 9. Your own model and your own data\n\n`dl.train(cfg, model=..., data=...)` "
              "trains a module you wrote on tensors you hold. Register the class with "
              "`@MODELS.register` (it takes `(cfg, num_classes)`), so the run can build it "
              "again. A class defined in a notebook loads again only in this session: put it "
              "in a module of yours to load the run anywhere. The cell registers the name "
              "once; restart the kernel after you change the class.",
        "bn": "## ৯. আপনার নিজের মডেল ও আপনার নিজের ডেটা\n\n"
              "`dl.train(cfg, model=..., data=...)` আপনার লেখা একটি মডেলকে আপনার হাতে থাকা "
              "টেনসরে প্রশিক্ষণ দেয়। ক্লাসটি `@MODELS.register` দিয়ে নিবন্ধন করুন (এটি "
              "`(cfg, num_classes)` নেয়), যাতে রানটি একে আবার তৈরি করতে পারে। নোটবুকে "
              "সংজ্ঞায়িত ক্লাস শুধু এই সেশনেই আবার লোড হয়: যেকোনো জায়গায় রান লোড করতে একে "
              "আপনার নিজের একটি মডিউলে রাখুন। সেলটি নামটি একবারই নিবন্ধন করে; ক্লাস বদলালে "
              "কার্নেল রিস্টার্ট করুন।",
    }),
    ("code", '''\
from torch import nn

from digitlab.models import MODELS

if "my-net" not in MODELS:  # a re-run of this cell keeps the class registered first
    @MODELS.register("my-net", help="a small conv net of my own")
    class MyNet(nn.Module):
        def __init__(self, cfg=None, num_classes=10):  # how a run builds it again
            super().__init__()
            self.features = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(),
                                          nn.MaxPool2d(2))
            self.head = nn.Linear(8 * 14 * 14, num_classes)

        def forward(self, x):
            return self.head(torch.flatten(self.features(x), 1))

print(MyNet())'''),
    ("md", {
        "en": "Your data: `uint8` images `[N, 28, 28]`, white ink on black, and integer labels "
              "`[N]`, as numpy arrays or tensors. Here a slice of the data above (the digits "
              "set is small enough to take whole). The evaluation, plots and report come from "
              "your test split, and the run records the dataset as `user`.",
        "bn": "আপনার ডেটা: `[N, 28, 28]` আকারের `uint8` ছবি, কালোর ওপর সাদা কালি, আর `[N]` "
              "আকারের পূর্ণসংখ্যা লেবেল, numpy array বা টেনসর হিসেবে। এখানে ওপরের ডেটার একটি "
              "অংশ (digits সেট এত ছোট যে পুরোটাই নেওয়া যায়)। মূল্যায়ন, প্লট ও রিপোর্ট আসে "
              "আপনার টেস্ট অংশ থেকে, আর রানটি ডেটাসেট হিসেবে `user` লিখে রাখে।",
    }),
    ("code", '''\
train_x, train_y = data.train.images[:6000], data.train.labels[:6000]
test_x, test_y = data.test.images[:2000], data.test.labels[:2000]
print("train:", tuple(train_x.shape), train_x.dtype, "| test:", tuple(test_x.shape))

own = dl.train(cfg, model=MyNet(), data=(train_x, train_y, test_x, test_y))
print(f"my-net test accuracy: {own.summary['test_accuracy']:.4f}")
print("recorded as:", own.config.model.name, "on", own.summary["dataset"])

labels, probabilities = own.predict(test_x[:12])
print("predicted:", labels)
print("truth:    ", test_y[:12].tolist())'''),
]

ACTIVATIONS_AND_LOSSES = [
    ("md", {
        "en": "[বাংলা](../bn/02-activations-and-losses.ipynb) · English\n\n# Activations and "
              "losses\n\nThe activations digitlab knows and their derivatives, the losses as the "
              "true class's logit moves, and a small learning-rate sweep. The curves come from "
              "the same functions as `digitlab plot activations` and `digitlab plot losses`; "
              "see the cheat-sheets for [activations](../../docs/en/cheatsheet-activations.md) "
              "and [losses](../../docs/en/cheatsheet-losses.md).",
        "bn": "[English](../en/02-activations-and-losses.ipynb) · বাংলা\n\n# অ্যাক্টিভেশন ও "
              "লস\n\ndigitlab-এর জানা অ্যাক্টিভেশনগুলো ও তাদের ডেরিভেটিভ, সঠিক ক্লাসের logit "
              "বদলালে লসগুলো কেমন বদলায়, আর learning rate-এর একটি ছোট সুইপ। বক্ররেখাগুলো আসে "
              "`digitlab plot activations` ও `digitlab plot losses`-এর একই ফাংশন থেকে; চিট-শিট "
              "দেখুন: [অ্যাক্টিভেশন](../../docs/bn/cheatsheet-activations.md) ও "
              "[লস](../../docs/bn/cheatsheet-losses.md)।",
    }),
    ("md", SETUP_DOC),
    ("code", '''\
%matplotlib inline
# A cell that ends with a matplotlib Figure (or a PIL image) shows it.
import os

import torch
from matplotlib.figure import Figure

import digitlab as dl
from digitlab.config import ModelConfig, apply_overrides
from digitlab.models.activations import ACTIVATIONS, LECTURE
from digitlab.viz.figures import activation_curve, loss_curves, loss_figure

DATASET = os.environ.get("DIGITLAB_NOTEBOOK_DATASET", "mnist")  # CI: "digits"
SWEEP_EPOCHS = int(os.environ.get("DIGITLAB_NOTEBOOK_EPOCHS", "1"))
torch.manual_seed(0)'''),
    ("md", {
        "en": "## 1. Activations and their derivatives\n\nSolid: f(x); dashed: f'(x), computed "
              "by autograd. Softmax-like activations act on a whole vector; the curve follows "
              "component 0 of `[x, 0, 1]`.",
        "bn": "## ১. অ্যাক্টিভেশন ও তাদের ডেরিভেটিভ\n\nটানা রেখা: f(x); ড্যাশ রেখা: f'(x), "
              "autograd দিয়ে হিসাব করা। Softmax-জাতীয় অ্যাক্টিভেশন পুরো ভেক্টরের ওপর কাজ করে; "
              "বক্ররেখাটি `[x, 0, 1]`-এর ০ নম্বর উপাদান অনুসরণ করে।",
    }),
    ("code", '''\
x = torch.linspace(-5, 5, 401)
names = ACTIVATIONS.names()
fig = Figure(figsize=(16, 15))
axes = fig.subplots(5, 5)
for ax, name in zip(axes.flat, names, strict=False):
    y, grad = activation_curve(name, ModelConfig(activation=name), x)
    ax.plot(x, y, linewidth=2)
    ax.plot(x, grad, "--", linewidth=1)
    ax.set_title(name if name in LECTURE else f"{name} (extra)", fontsize=10)
    ax.grid(alpha=0.3)
for ax in list(axes.flat)[len(names):]:
    ax.axis("off")
fig'''),
    ("md", {
        "en": "The derivative far from 0 tells whether a unit can still learn there: sigmoid "
              "and tanh saturate (vanishing gradients), ReLU is 0 for every negative input.",
        "bn": "০ থেকে দূরে ডেরিভেটিভ বলে দেয় সেখানে একটি ইউনিট আর শিখতে পারে কি না: sigmoid "
              "ও tanh পরিপূর্ণ হয়ে যায় (vanishing gradient), আর ঋণাত্মক ইনপুটে ReLU-র "
              "ডেরিভেটিভ ০।",
    }),
    ("code", '''\
points = torch.tensor([-4.0, -1.0, 0.5, 4.0])
print(f"{'activation':<12}" + "".join(f"f'({float(p):g})".rjust(10) for p in points))
for name in ["relu", "leakyrelu", "elu", "gelu", "sigmoid", "tanh"]:
    _, grad = activation_curve(name, ModelConfig(activation=name), points)
    print(f"{name:<12}" + "".join(f"{float(g):10.4f}" for g in grad))'''),
    ("md", {
        "en": "## 2. Losses against the true class's logit\n\nTen logits, the true class's logit "
              "`z` moving, the other nine at 0. Cross-entropy keeps pushing a wrong answer; "
              "MSE and L1 on probabilities barely move it when it is badly wrong.",
        "bn": "## ২. সঠিক ক্লাসের logit-এর সাপেক্ষে লস\n\nদশটি logit, সঠিক ক্লাসের logit `z` "
              "বদলাচ্ছে, বাকি নয়টি ০। Cross-entropy ভুল উত্তরকে ঠেলতে থাকে; সম্ভাবনার ওপর "
              "MSE ও L1 খুব ভুল হলে প্রায় নড়ে না।",
    }),
    ("code", '''\
z = torch.linspace(-6, 8, 141)
display(loss_figure(z))  # the figure `digitlab plot losses` saves

curves = loss_curves(z)

columns = [int((z - v).abs().argmin()) for v in (-4.0, 0.0, 4.0)]
print(f"{'loss':<32}{'z=-4':>10}{'z=0':>10}{'z=4':>10}")
for title, (values, _) in curves.items():
    print(f"{title:<32}" + "".join(f"{values[i]:10.4f}" for i in columns))'''),
    ("md", {
        "en": "## 3. A small sweep: three learning rates\n\n`dl.train` in a loop, one run per "
              "learning rate (Adam), then a table. `digitlab sweep --grid optim.lr=...` does "
              "the same from the command line, with seeds and a report.",
        "bn": "## ৩. একটি ছোট সুইপ: তিনটি learning rate\n\nলুপে `dl.train`, প্রতি learning "
              "rate-এ একটি রান (Adam), তারপর একটি টেবিল। কমান্ড লাইন থেকে "
              "`digitlab sweep --grid optim.lr=...` একই কাজ করে, seed ও রিপোর্ট সহ।",
    }),
    ("code", '''\
cfg = apply_overrides(dl.Config(), {"data.name": DATASET, "train.epochs": SWEEP_EPOCHS})
results = []
for lr in [1e-4, 1e-3, 1e-2]:
    run = dl.train(cfg, set={"optim.lr": lr})
    results.append((lr, run.metrics[-1]["train_loss"], run.summary["test_accuracy"]))'''),
    ("code", '''\
print(f"{'optim.lr':>10}{'train loss':>12}{'test acc':>10}")
for lr, loss, accuracy in results:
    print(f"{lr:>10g}{loss:>12.4f}{accuracy:>10.2%}")
best = max(results, key=lambda row: row[2])
print(f"best learning rate: {best[0]:g}")'''),
]


def notebook(cells, lang):
    nb = nbformat.v4.new_notebook()
    nb.metadata = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    }
    for i, (kind, source) in enumerate(cells):
        if kind == "md":
            cell = nbformat.v4.new_markdown_cell(source[lang])
        else:
            cell = nbformat.v4.new_code_cell(source)
        cell.id = f"cell-{i:02d}"
        nb.cells.append(cell)
    nbformat.validate(nb)
    return nb


def render(nb) -> str:
    """The notebook's file text, as nbformat.write writes it."""
    return nbformat.writes(nb) + "\n"


def main(argv: list[str]) -> int:
    check = argv == ["--check"]
    if argv and not check:
        print("usage: python tools/make_notebooks.py [--check]", file=sys.stderr)
        return 2
    stale = []
    for lang in ("en", "bn"):
        for name, cells in [("01-quickstart", QUICKSTART),
                            ("02-activations-and-losses", ACTIVATIONS_AND_LOSSES)]:
            path = ROOT / lang / f"{name}.ipynb"
            text = render(notebook(cells, lang))
            if check:
                current = path.read_text(encoding="utf-8") if path.is_file() else None
                stale += [] if current == text else [path.relative_to(ROOT.parent).as_posix()]
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text, encoding="utf-8")
    if stale:
        print(f"out of date: {', '.join(stale)}; run python tools/make_notebooks.py",
              file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
