"""A cheap look for text in an image, before Tesseract is asked to read it.

Printed text is rows of small, high-contrast marks of about one height, each close to
the next. So: mark the pixels much darker (or much lighter) than their neighbourhood,
take the connected blobs of a letter's or a word's shape, link each blob to a blob of
similar height just right of it on the same line, and count the blobs in runs of
``min_run`` or more. Photos rarely line up six such marks (four did in most of the
evaluation photos); textures (gravel) and roof tiles sometimes do, which only costs a
Tesseract pass that finds nothing worth keeping.

A few milliseconds on a 512-px thumbnail (bench/RESULTS.md). The median height of
the linked blobs also says how large the text is, so the reader can pick a scale.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageFilter
from scipy import ndimage
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import KDTree

Boxes = npt.NDArray[np.float64]  # rows of (top, bottom, left, right)


@dataclass(frozen=True, slots=True)
class TextEvidence:
    marks: int  # blobs in runs of min_run or more: 0 means no sign of text
    height_px: float | None  # their median height, in the examined image's pixels

    def likely(self, min_marks: int) -> bool:
        return self.marks >= min_marks


@dataclass(frozen=True, slots=True)
class GateSettings:
    contrast: int = 25  # grey levels from the neighbourhood mean that count as ink
    radius: int = 12  # the neighbourhood (box blur radius, px)
    min_height: int = 4  # marks smaller than this are noise at thumbnail scale
    max_height: int = 64
    min_run: int = 6  # a word of six letters, or two short ones on a line
    # Blob counts past this are textures; the rest are enough to find lines.
    max_blobs: int = 3000


def look_for_text(image: Image.Image, settings: GateSettings | None = None) -> TextEvidence:
    """Marks that line up like text, on both dark-on-light and light-on-dark ink."""
    settings = settings or GateSettings()
    gray = image.convert("L")
    pixels = np.asarray(gray, dtype=np.int16)
    local = np.asarray(gray.filter(ImageFilter.BoxBlur(settings.radius)), dtype=np.int16)
    heights: list[npt.NDArray[np.float64]] = []
    for ink in (pixels < local - settings.contrast, pixels > local + settings.contrast):
        heights.append(_marks_in_runs(_letter_boxes(ink, settings), settings.min_run))
    found = np.concatenate(heights)
    return TextEvidence(len(found), float(np.median(found)) if len(found) else None)


def _letter_boxes(ink: npt.NDArray[np.bool_], settings: GateSettings) -> Boxes:
    """Bounding boxes of the blobs shaped like a letter or a word."""
    labels, count = ndimage.label(ink)
    if count == 0:
        return np.zeros((0, 4))
    slices = ndimage.find_objects(labels)
    boxes = np.array(
        [(s[0].start, s[0].stop, s[1].start, s[1].stop) for s in slices], dtype=np.float64
    )
    area = np.bincount(labels.ravel(), minlength=count + 1)[1:]
    height = boxes[:, 1] - boxes[:, 0]
    width = boxes[:, 3] - boxes[:, 2]
    fill = area / (height * width)
    shaped = (
        (height >= settings.min_height)
        & (height <= settings.max_height)
        & (width <= height * 12)  # a word, not a rule or an edge
        & (fill > 0.12)  # strokes, not a thin outline
        & (fill < 0.95)  # not a solid patch
    )
    return boxes[shaped][: settings.max_blobs]


def _marks_in_runs(boxes: Boxes, min_run: int) -> npt.NDArray[np.float64]:
    """Heights of the blobs in runs of at least ``min_run`` on one line."""
    count = len(boxes)
    if count < min_run:
        return np.zeros(0)
    height = boxes[:, 1] - boxes[:, 0]
    middle = (boxes[:, 0] + boxes[:, 1]) / 2
    # each blob's nearest left edges to where the next letter of its line would start
    k = min(4, count)
    _, nearest = KDTree(np.column_stack([boxes[:, 2], middle])).query(
        np.column_stack([boxes[:, 3] + 0.3 * height, middle]), k=k
    )
    source = np.repeat(np.arange(count), k)
    target = np.asarray(nearest).reshape(count, k).ravel()
    h_source, h_target = height[source], height[target]
    gap = boxes[target, 2] - boxes[source, 3]
    ratio = h_target / h_source
    linked = (
        (target != source)
        & (np.abs(middle[target] - middle[source]) < 0.3 * np.minimum(h_source, h_target))
        & (ratio > 0.6)
        & (ratio < 1.67)
        & (gap > -0.2 * h_source)
        & (gap < 1.2 * np.maximum(h_source, h_target))
    )
    graph = coo_matrix(
        (np.ones(int(linked.sum())), (source[linked], target[linked])), shape=(count, count)
    )
    _, run_of = connected_components(graph, directed=False)
    run_sizes = np.bincount(run_of)
    return np.asarray(height[run_sizes[run_of] >= min_run], dtype=np.float64)
