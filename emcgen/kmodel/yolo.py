"""YOLOv2 region-layer decoding, for checking detector kmodels end to end.

Standard YOLOv2 (Redmon & Farhadi 2016): the output map holds, per anchor n, the channels
[tx, ty, tw, th, objectness, class scores...]; box centre = (cell + sigmoid(t)) / grid, size =
anchor * exp(t) / grid, score = sigmoid(objectness) * softmax(class scores); then per-class
non-maximum suppression. The constants are those of nncase v0.1.0-rc5's 20-class example
(examples/20classes_yolo/k210/kpu_20classes_example/main.c: 5 anchors, threshold 0.5, NMS 0.2).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

VOC_CLASSES = (
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
)
NNCASE_20CLASS_ANCHORS = ((1.08, 1.19), (3.42, 4.41), (6.63, 11.38), (9.42, 5.11), (16.62, 10.52))


@dataclass
class Detection:
    class_id: int
    name: str
    score: float
    box: tuple[float, float, float, float]  # (x0, y0, x1, y1), fractions of the image size


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _iou(box, boxes):
    x0 = np.maximum(box[0], boxes[:, 0])
    y0 = np.maximum(box[1], boxes[:, 1])
    x1 = np.minimum(box[2], boxes[:, 2])
    y1 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = lambda b: (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])  # noqa: E731
    return inter / (area(box) + area(boxes) - inter)


def decode(
    output, anchors=NNCASE_20CLASS_ANCHORS, classes=VOC_CLASSES, threshold: float = 0.5, nms: float = 0.2
) -> list[Detection]:
    """Detections (best first) from a (anchors*(5+classes), H, W) region map."""
    n_anchor, n_class = len(anchors), len(classes)
    out = np.asarray(output, dtype=np.float64)
    _, h, w = out.shape
    t = out.reshape(n_anchor, 5 + n_class, h, w)
    col = np.arange(w)[None, None, :]
    row = np.arange(h)[None, :, None]
    aw = np.array([a[0] for a in anchors])[:, None, None]
    ah = np.array([a[1] for a in anchors])[:, None, None]
    cx = (col + _sigmoid(t[:, 0])) / w
    cy = (row + _sigmoid(t[:, 1])) / h
    bw = np.exp(t[:, 2]) * aw / w
    bh = np.exp(t[:, 3]) * ah / h
    logits = t[:, 5:]
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    scores = _sigmoid(t[:, 4])[:, None] * e / e.sum(axis=1, keepdims=True)  # (A, C, H, W)
    boxes = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=-1)  # (A, H, W, 4)
    found = []
    for c in range(n_class):
        s = scores[:, c].reshape(-1)
        b = boxes.reshape(-1, 4)
        keep = np.nonzero(s > threshold)[0]
        keep = keep[np.argsort(-s[keep])]
        while keep.size:
            best, keep = keep[0], keep[1:]
            found.append(Detection(c, classes[c], float(s[best]), tuple(float(v) for v in b[best])))
            keep = keep[_iou(b[best], b[keep]) <= nms]
    return sorted(found, key=lambda d: -d.score)
