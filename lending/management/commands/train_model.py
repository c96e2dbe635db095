"""Train a product's model, store it as a versioned artifact and register it (unapproved)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from lending.services import model_version_register, product_register
from scoring.artifact import read_manifest, save_model
from scoring.datasets import load_dataset
from scoring.spec import SpecError, get_spec
from scoring.train import train_product

# The figures every run ends with, one "name: value" line each, in this order.
REPORTED = ("auc", "cv_auc", "cv_auc_std", "ks", "brier", "benchmark_auc", "benchmark_cv_auc")


class Command(BaseCommand):
    help = "Train a product's model (monotone gradient boosting + logistic benchmark) and register it."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--product", required=True, help="product slug (a spec in scoring/products/ "
                            "or CANDOR_PRODUCTS_DIR)")
        parser.add_argument("--data", help="path to the training data (default: the spec's data path)")
        parser.add_argument("--rows", type=int, help="rows to generate (demo product only)")
        parser.add_argument("--seed", type=int, default=0)

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            spec = get_spec(options["product"], settings.CANDOR_PRODUCTS_DIR)
        except (KeyError, SpecError) as exc:
            raise CommandError(str(exc)) from exc
        spec_path = settings.CANDOR_PRODUCTS_DIR / f"{spec.slug}.toml"
        if not spec_path.exists():
            spec_path = Path(__file__).resolve().parents[3] / "scoring" / "products" / f"{spec.slug}.toml"
        product = product_register(spec=spec, spec_text=spec_path.read_text(encoding="utf-8"))
        try:
            dataset = load_dataset(spec, options.get("data"), n=options.get("rows"), seed=options["seed"])
        except (FileNotFoundError, ValueError) as exc:
            raise CommandError(str(exc)) from exc
        self.stderr.write(f"training {spec.slug} on {len(dataset.y)} rows from {dataset.source} ...")
        result = train_product(spec, dataset, seed=options["seed"])
        path = save_model(result, spec, dataset, settings.CANDOR_MODEL_DIR)
        manifest = read_manifest(path)
        version = model_version_register(product=product, path=path, manifest=manifest)
        self.stderr.write(f"registered {spec.slug} {version.version} at {path} (status: {version.status}; "
                          f"approve it with: manage.py approve_model --product {spec.slug} "
                          f"--version {version.version} --by USERNAME)")
        metrics = manifest["metrics"]
        for name in REPORTED:
            if name in metrics:
                self.stdout.write(f"{name}: {metrics[name]:.4f}")
        self.stdout.write(f"version: {version.version}")
