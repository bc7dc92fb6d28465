"""YOLO detection dataset checks over generated datasets, good and broken."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from PIL import Image

from trainyard_workflows.storage import StorageSettings
from trainyard_workflows.validation import SplitCounts, validate_dataset
from trainyard_workflows.validation.report import MAX_MESSAGES
from trainyard_workflows.validation.yolo import label_path_for, validate_yolo_detection

DEFAULT_LABEL = "0 0.5 0.5 0.25 0.25\n"


@dataclass
class YoloDataset:
    """Writes a small dataset: `images/<split>/<stem>.png` and `labels/<split>/<stem>.txt`."""

    root: Path
    names: list[str] = field(default_factory=lambda: ["cat", "dog", "bird"])

    def add_image(
        self,
        split: str,
        stem: str,
        *,
        label: str | None = DEFAULT_LABEL,
        image_bytes: bytes | None = None,
    ) -> Path:
        image = self.root / "images" / split / f"{stem}.png"
        image.parent.mkdir(parents=True, exist_ok=True)
        if image_bytes is None:
            # Distinct pixels per image: identical content across splits is reported.
            shade = sum(map(ord, split + stem)) % 256
            Image.new("RGB", (16, 12), (120, 40, shade)).save(image, format="PNG")
        else:
            image.write_bytes(image_bytes)
        if label is not None:
            label_file = self.root / "labels" / split / f"{stem}.txt"
            label_file.parent.mkdir(parents=True, exist_ok=True)
            label_file.write_text(label)
        return image

    def write_yaml(self, **overrides: Any) -> None:
        config: dict[str, Any] = {"train": "images/train", "val": "images/val", "names": self.names}
        config.update(overrides)
        (self.root / "data.yaml").write_text(yaml.safe_dump(config))


@pytest.fixture
def dataset(tmp_path: Path) -> YoloDataset:
    """A valid dataset: 3 classes, 4 train and 2 val images, every image labelled."""
    data = YoloDataset(tmp_path / "dataset")
    data.add_image("train", "a", label="0 0.5 0.5 0.2 0.2\n1 0.1 0.1 0.05 0.05\n")
    data.add_image("train", "b", label="1 0.5 0.5 1 1\n")
    data.add_image("train", "c", label="2 0 0 0.5 0.5\n\n")
    data.add_image("train", "d", label="")  # a background image: empty label file
    data.add_image("val", "e", label="0 0.3 0.3 0.1 0.1\n")
    data.add_image("val", "f", label="2 0.7 0.7 0.2 0.2\n")
    data.write_yaml()
    return data


def test_a_valid_dataset_passes_with_counts_per_split_and_a_class_histogram(
    dataset: YoloDataset,
) -> None:
    report = validate_dataset(dataset.root.as_uri(), "detect")

    assert report.ok, report.errors
    assert report.errors == []
    assert report.warnings == []
    assert report.counts == {
        "train": SplitCounts(images=4, labelled=4, boxes=4),
        "val": SplitCounts(images=2, labelled=2, boxes=2),
    }
    assert report.class_histogram == {"cat": 2, "dog": 2, "bird": 2}
    assert report.summary() == "dataset valid: train 4 images, val 2 images"


def test_a_missing_data_yaml_is_an_error(dataset: YoloDataset) -> None:
    (dataset.root / "data.yaml").unlink()

    report = validate_yolo_detection(dataset.root)

    assert not report.ok
    assert report.errors == [f"data.yaml not found in {dataset.root}"]


def test_a_missing_dataset_folder_is_an_error(tmp_path: Path) -> None:
    report = validate_dataset((tmp_path / "nowhere").as_uri(), "detect")

    assert not report.ok
    assert report.errors == [f"dataset folder {tmp_path / 'nowhere'} does not exist"]


def test_a_data_yaml_that_does_not_parse_is_an_error(dataset: YoloDataset) -> None:
    (dataset.root / "data.yaml").write_text("names: [cat, dog\ntrain: :\n")

    report = validate_yolo_detection(dataset.root)

    assert not report.ok
    assert report.errors[0].startswith("data.yaml does not parse:")


def test_a_data_yaml_without_names_is_an_error(dataset: YoloDataset) -> None:
    (dataset.root / "data.yaml").write_text("train: images/train\nval: images/val\n")

    report = validate_yolo_detection(dataset.root)

    assert not report.ok
    assert "data.yaml has no 'names' (the class names)" in report.errors


def test_names_may_be_a_mapping_from_class_id(dataset: YoloDataset) -> None:
    dataset.write_yaml(names={0: "cat", 1: "dog", 2: "bird"}, nc=3)

    report = validate_yolo_detection(dataset.root)

    assert report.ok, report.errors
    assert report.class_histogram == {"cat": 2, "dog": 2, "bird": 2}


def test_nc_disagreeing_with_names_is_an_error(dataset: YoloDataset) -> None:
    dataset.write_yaml(nc=5)

    report = validate_yolo_detection(dataset.root)

    assert report.errors == ["data.yaml 'nc' is 5 but 'names' lists 3 classes"]


def test_a_class_id_out_of_range_is_an_error_naming_the_file_and_line(
    dataset: YoloDataset,
) -> None:
    dataset.add_image("train", "x", label="0 0.5 0.5 0.1 0.1\n3 0.5 0.5 0.1 0.1\n")

    report = validate_yolo_detection(dataset.root)

    assert not report.ok
    assert report.errors == ["train: labels/train/x.txt line 2: class id 3 out of range 0..2"]
    assert report.counts["train"].bad_label_files == 1


def test_a_negative_or_fractional_class_id_is_an_error(dataset: YoloDataset) -> None:
    dataset.add_image("val", "neg", label="-1 0.5 0.5 0.1 0.1\n")
    dataset.add_image("val", "frac", label="1.5 0.5 0.5 0.1 0.1\n")

    report = validate_yolo_detection(dataset.root)

    assert sorted(report.errors) == [
        "val: labels/val/frac.txt line 1: class id 1.5 is not an integer",
        "val: labels/val/neg.txt line 1: class id -1 out of range 0..2",
    ]


def test_coordinates_outside_zero_to_one_are_an_error(dataset: YoloDataset) -> None:
    dataset.add_image("train", "pixels", label="1 320 240 64 48\n")

    report = validate_yolo_detection(dataset.root)

    assert not report.ok
    assert report.errors == [
        "train: labels/train/pixels.txt line 1: coordinates must be normalised to [0, 1], got 320"
    ]


def test_a_label_line_without_five_numbers_is_an_error(dataset: YoloDataset) -> None:
    dataset.add_image("train", "short", label="0 0.5 0.5 0.1\n")
    dataset.add_image("train", "words", label="0 0.5 0.5 0.1 wide\n")

    report = validate_yolo_detection(dataset.root)

    assert sorted(report.errors) == [
        "train: labels/train/short.txt line 1: expected 5 numbers (class x y w h), got 4",
        "train: labels/train/words.txt line 1: not a number in '0 0.5 0.5 0.1 wide'",
    ]


def test_a_corrupt_image_is_an_error(dataset: YoloDataset) -> None:
    dataset.add_image("val", "broken", image_bytes=b"\x89PNG\r\n\x1a\n not really a png")

    report = validate_yolo_detection(dataset.root)

    assert not report.ok
    assert report.errors == ["val: images/val/broken.png is not a readable image"]
    assert report.counts["val"].corrupt_images == 1


def test_an_image_without_a_label_file_is_a_warning_not_an_error(dataset: YoloDataset) -> None:
    dataset.add_image("train", "unlabelled", label=None)

    report = validate_yolo_detection(dataset.root)

    assert report.ok
    assert report.warnings == ["train: 1 of 5 images have no label file (they train as background)"]
    assert report.counts["train"].missing_labels == 1


def test_an_empty_val_folder_is_an_error(dataset: YoloDataset) -> None:
    for image in (dataset.root / "images" / "val").iterdir():
        image.unlink()

    report = validate_yolo_detection(dataset.root)

    assert not report.ok
    assert report.errors == ["val: no images in images/val"]
    assert "val" not in report.counts


def test_a_missing_train_folder_is_an_error(dataset: YoloDataset) -> None:
    dataset.write_yaml(train="images/training")

    report = validate_yolo_detection(dataset.root)

    assert report.errors == ["train: image folder images/training does not exist"]


def test_a_split_missing_from_data_yaml_is_an_error(dataset: YoloDataset) -> None:
    (dataset.root / "data.yaml").write_text("train: images/train\nnames: [cat, dog, bird]\n")

    report = validate_yolo_detection(dataset.root)

    assert report.errors == ["data.yaml has no 'val' entry"]


def test_split_paths_resolve_against_the_path_entry(dataset: YoloDataset) -> None:
    moved = dataset.root / "nested"
    moved.mkdir()
    (dataset.root / "images").rename(moved / "images")
    (dataset.root / "labels").rename(moved / "labels")
    dataset.write_yaml(path="nested")

    report = validate_yolo_detection(dataset.root)

    assert report.ok, report.errors
    assert report.counts["train"].images == 4


def test_a_split_may_be_a_txt_list_of_images(dataset: YoloDataset) -> None:
    (dataset.root / "val.txt").write_text("images/val/e.png\n\nimages/val/f.png\n")
    dataset.write_yaml(val="val.txt")

    report = validate_yolo_detection(dataset.root)

    assert report.ok, report.errors
    assert report.counts["val"] == SplitCounts(images=2, labelled=2, boxes=2)


def test_errors_are_capped_and_the_rest_counted(dataset: YoloDataset) -> None:
    for number in range(MAX_MESSAGES + 5):
        dataset.add_image("train", f"bad{number:02d}", label="7 0.5 0.5 0.1 0.1\n")

    report = validate_yolo_detection(dataset.root)

    assert len(report.errors) == MAX_MESSAGES + 1
    assert report.errors[-1] == "... and 5 more"
    assert report.counts["train"].bad_label_files == MAX_MESSAGES + 5


def test_an_s3_uri_outside_the_configured_storage_is_an_error(tmp_path: Path) -> None:
    storage = StorageSettings(storage_url=tmp_path.as_uri())

    report = validate_dataset("s3://bucket/coco8", "detect", storage)

    assert not report.ok
    assert report.errors[0].startswith("dataset URI: s3://bucket/coco8 is an s3:// URI but")


def test_a_uri_with_an_unknown_scheme_is_an_error() -> None:
    report = validate_dataset("http://example.com/coco8", "detect")

    assert not report.ok
    assert "'http://'" in report.errors[0]


def test_tasks_without_checks_are_not_checked_and_say_so(tmp_path: Path) -> None:
    report = validate_dataset(tmp_path.as_uri(), "segment")

    assert report.ok
    assert report.warnings == ["no dataset checks for task 'segment' yet; dataset not checked"]


def test_labels_live_under_the_last_images_folder_renamed_labels() -> None:
    image = Path("/data/images/set/images/train/x.jpeg")

    assert label_path_for(image) == Path("/data/images/set/labels/train/x.txt")
