"""One synthetic VOC-like scene: image, saliency, CAM-like initial seeds and ground truth.

Every class 1..C (C = 20 for VOC, 80 for COCO) has fixed appearance statistics (colour,
texture, shape, aspect ratio and the position of its "discriminative part"), so a small CNN
can learn it from a few dozen images. Each image holds 1-3 objects on a cluttered grey-ish
background and comes with:
ground truth (label indices with a 255 band on object borders), a noisy, blurred saliency
map, and CAM-like initial seeds: a compact blob covering 10-25 % of each object around its
discriminative part, strictly inside the object, i.e. precise but of low recall.
"""
import math

import cv2
import numpy as np

from lib.voc import IGNORE, NUM_FG_CLASSES

SHAPES = ("ellipse", "rectangle", "triangle", "blob")
TEXTURES = ("smooth", "stripes", "checker", "dots")
# Area of each shape for unit half-axes, used to size an object to a target area.
_UNIT_AREA = {"ellipse": math.pi, "rectangle": 4.0, "triangle": 3.0 * math.sqrt(3.0) / 4.0,
              "blob": math.pi}
_ASPECTS = (0.5, 0.65, 0.8, 1.0, 1.25, 1.55, 1.9)

_SEED_FRACTION = (0.10, 0.25)   # seed blob area / visible object area
_MIN_VISIBLE = 0.55             # an occluded object keeps at least this share of its area
_MIN_VISIBLE_OF_IMAGE = 0.035   # ... and at least this share of the image
_PLACEMENT_TRIES = 40


def class_style(cls, num_classes=NUM_FG_CLASSES):
    """Fixed appearance statistics of class ``cls`` (1..num_classes), independent of any seed.

    Hues are spread evenly over the colour circle; neighbouring hues get different textures
    and shapes, so no two classes look alike. The "part" is where a CAM would fire: a point
    in the object's own frame (units of its half-axes).
    """
    if not 1 <= cls <= num_classes:
        raise ValueError(f"class must be in 1..{num_classes}, got {cls}")
    k = cls - 1
    part_angle = 2.39996 * k  # golden angle: parts spread around the object
    return {
        "hue": 180.0 / num_classes * k,              # OpenCV hue, 0..180
        "sat": 215.0 if k % 3 else 245.0,
        "val": 225.0 if k % 2 else 170.0,
        "texture": TEXTURES[k % 4],
        "shape": SHAPES[(k // 4 + k) % 4],
        "aspect": _ASPECTS[(3 * k) % len(_ASPECTS)],
        "angle": (37.0 * k) % 180.0,                 # stripe orientation, degrees
        "period": 4.0 + (k * 7) % 5,                 # texture period, pixels
        "part": (0.45 * math.cos(part_angle), 0.45 * math.sin(part_angle)),
    }


def _hsv_to_bgr(hue, sat, val):
    hsv = np.array([[[hue % 180.0, np.clip(sat, 0, 255), np.clip(val, 0, 255)]]],
                   dtype=np.float32)
    hsv[..., 1:] /= 255.0
    hsv[..., 0] *= 2.0  # float HSV in OpenCV uses hue in degrees
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0] * 255.0


def _smooth_noise(rng, height, width, cells):
    """Low-frequency noise in [-1, 1]: a coarse random grid resized up bicubically."""
    grid = rng.uniform(-1.0, 1.0, size=(cells, cells)).astype(np.float32)
    return np.clip(cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC), -1.0, 1.0)


def _render_background(rng, height, width):
    """Grey-ish textured clutter: colours of low saturation, so never a class colour."""
    base = rng.uniform(60, 190)
    tint = rng.uniform(-12, 12, size=3)
    image = np.empty((height, width, 3), np.float32)
    image[:] = base + tint
    image += 25.0 * _smooth_noise(rng, height, width, int(rng.integers(3, 7)))[..., None]
    canvas = np.zeros((height, width), np.uint8)
    for _ in range(int(rng.integers(3, 8))):
        canvas[:] = 0
        kind = rng.integers(3)
        if kind == 0:
            centre = (int(rng.integers(width)), int(rng.integers(height)))
            axes = (int(rng.integers(3, width // 3)), int(rng.integers(3, height // 3)))
            cv2.ellipse(canvas, centre, axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
        elif kind == 1:
            points = rng.integers(0, (width, height), size=(int(rng.integers(3, 6)), 2))
            cv2.fillPoly(canvas, [points.astype(np.int32)], 1)
        else:
            thickness = int(rng.integers(1, 4))
            x0, y0 = int(rng.integers(width)), int(rng.integers(height))
            x1, y1 = int(rng.integers(width)), int(rng.integers(height))
            cv2.line(canvas, (x0, y0), (x1, y1), 1, thickness)
        shade = base + rng.uniform(-35, 35) + rng.uniform(-8, 8, size=3)
        image = np.where(canvas[..., None] > 0, 0.6 * image + 0.4 * shade, image)
    image += rng.normal(0.0, 5.0, size=image.shape).astype(np.float32)
    return image


def _object_geometry(rng, cls, height, width, area_fraction, num_classes):
    """Draw one object's pose: centre, half-axes and rotation, sized to ``area_fraction``;
    its class's style goes with it."""
    style = class_style(cls, num_classes)
    aspect = style["aspect"] * rng.uniform(0.85, 1.15)
    area = area_fraction * height * width
    half_x = math.sqrt(area * aspect / _UNIT_AREA[style["shape"]])
    half_y = math.sqrt(area / (aspect * _UNIT_AREA[style["shape"]]))
    rotation = rng.uniform(-25.0, 25.0)
    c, s = abs(math.cos(math.radians(rotation))), abs(math.sin(math.radians(rotation)))
    extent_x, extent_y = half_x * c + half_y * s, half_x * s + half_y * c
    centre = []
    for extent, side in ((extent_x, width), (extent_y, height)):
        low, high = 0.8 * extent, side - 0.8 * extent
        centre.append(rng.uniform(low, high) if low < high else side / 2.0 + rng.uniform(-2, 2))
    blob_radii = 1.0 + rng.uniform(-0.22, 0.22, size=int(rng.integers(8, 13)))
    return {"cls": cls, "style": style, "centre": tuple(centre), "half": (half_x, half_y),
            "rotation": rotation, "area": area, "blob_radii": blob_radii}


def _local_coords(geometry, height, width):
    """Every pixel's coordinates in the object's frame, in units of its half-axes."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    cx, cy = geometry["centre"]
    theta = math.radians(geometry["rotation"])
    dx, dy = xs - cx, ys - cy
    u = (dx * math.cos(theta) + dy * math.sin(theta)) / geometry["half"][0]
    v = (-dx * math.sin(theta) + dy * math.cos(theta)) / geometry["half"][1]
    return u, v


def _to_image_point(geometry, u, v):
    cx, cy = geometry["centre"]
    theta = math.radians(geometry["rotation"])
    x, y = u * geometry["half"][0], v * geometry["half"][1]
    cos, sin = math.cos(theta), math.sin(theta)
    return cx + x * cos - y * sin, cy + x * sin + y * cos


def _object_mask(geometry, height, width):
    """The object's full (unoccluded) binary mask, uint8 0/1."""
    shape = geometry["style"]["shape"]
    mask = np.zeros((height, width), np.uint8)
    if shape == "ellipse":
        centre = tuple(int(round(c)) for c in geometry["centre"])
        axes = tuple(max(1, int(round(h))) for h in geometry["half"])
        cv2.ellipse(mask, centre, axes, geometry["rotation"], 0, 360, 1, -1)
        return mask
    if shape == "rectangle":
        local = [(-1, -1), (1, -1), (1, 1), (-1, 1)]
    elif shape == "triangle":
        local = [(math.cos(a), math.sin(a)) for a in np.radians([-90.0, 30.0, 150.0])]
    else:
        radii = geometry["blob_radii"]
        angles = np.linspace(0.0, 2.0 * math.pi, len(radii), endpoint=False)
        local = list(zip(radii * np.cos(angles), radii * np.sin(angles)))
    points = np.array([_to_image_point(geometry, u, v) for u, v in local])
    cv2.fillPoly(mask, [np.round(points).astype(np.int32)], 1)
    return mask


def _object_appearance(rng, geometry, height, width):
    """The object's BGR colour at every pixel: jittered class colour times its texture."""
    style = geometry["style"]
    colour = _hsv_to_bgr(style["hue"] + rng.uniform(-3, 3), style["sat"] + rng.uniform(-20, 20),
                         style["val"] + rng.uniform(-20, 20))
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    theta = math.radians(style["angle"] + geometry["rotation"])
    along = xs * math.cos(theta) + ys * math.sin(theta)
    across = -xs * math.sin(theta) + ys * math.cos(theta)
    period = style["period"] * rng.uniform(0.9, 1.1)
    phase = rng.uniform(0, period)
    texture = style["texture"]
    if texture == "stripes":
        pattern = 0.5 + 0.5 * np.sin(2 * math.pi * (along + phase) / period)
    elif texture == "checker":
        cells = np.floor((along + phase) / period) + np.floor(across / period)
        pattern = (cells % 2).astype(np.float32)
    elif texture == "dots":
        du = (along + phase) % period - period / 2
        dv = across % period - period / 2
        pattern = (du * du + dv * dv < (0.3 * period) ** 2).astype(np.float32)
    else:
        pattern = np.zeros((height, width), np.float32)
    shading = 1.0 + 0.06 * _smooth_noise(rng, height, width, 3)
    brightness = (1.0 - 0.35 * pattern) * shading
    return brightness[..., None] * colour[None, None, :].astype(np.float32)


def _layout(rng, height, width, classes, num_classes):
    """Place 1-3 objects so that each keeps a reasonable visible area.

    Returns the geometries and full masks (back to front) and the label map of visible
    pixels (0 = background).
    An object that cannot be placed after several tries is dropped, so at least one stays.
    """
    count = min(int(rng.choice([1, 2, 3], p=[0.4, 0.4, 0.2])), len(classes))
    chosen = rng.choice(np.asarray(classes), size=count, replace=False)
    high = 0.40 / math.sqrt(count)
    min_visible = _MIN_VISIBLE_OF_IMAGE * height * width
    placed, masks = [], []
    labels = np.zeros((height, width), np.uint8)
    for cls in chosen:
        for _ in range(_PLACEMENT_TRIES):
            geometry = _object_geometry(rng, int(cls), height, width, rng.uniform(0.10, high),
                                        num_classes)
            mask = _object_mask(geometry, height, width)
            trial = np.where(mask > 0, np.uint8(cls), labels)
            trial_masks = masks + [mask]
            owners = _owners(trial_masks, height, width)
            visible = [np.count_nonzero(owners == j) for j in range(len(trial_masks))]
            full = [min(np.count_nonzero(m), g["area"])
                    for m, g in zip(trial_masks, placed + [geometry])]
            if all(vis >= max(_MIN_VISIBLE * f, min_visible) for vis, f in zip(visible, full)):
                placed.append(geometry)
                masks.append(mask)
                labels = trial
                break
    if not placed:  # a guaranteed fallback: one centred object
        geometry = _object_geometry(rng, int(chosen[0]), height, width, 0.25, num_classes)
        geometry["centre"] = (width / 2.0, height / 2.0)
        masks = [_object_mask(geometry, height, width)]
        placed = [geometry]
        labels = np.where(masks[0] > 0, np.uint8(geometry["cls"]), labels)
    return placed, masks, labels


def _owners(masks, height, width):
    """Index of the front-most object at each pixel, -1 for background."""
    owners = np.full((height, width), -1, np.int16)
    for index, mask in enumerate(masks):
        owners[mask > 0] = index
    return owners


def _seed_blob(rng, geometry, visible):
    """A compact blob of 10-25 % of the visible area around the class's part, inside the object.

    The blob is made of the interior pixels (at least two pixels away from the object's border,
    so clear of the ignore band) nearest to the part point, under a random elliptical metric.
    """
    interior = cv2.erode(visible, np.ones((5, 5), np.uint8))
    if np.count_nonzero(interior) < 4:
        interior = cv2.erode(visible, np.ones((3, 3), np.uint8))
    ys, xs = np.nonzero(interior)
    if len(ys) == 0:
        return np.zeros_like(visible, dtype=bool)
    part_x, part_y = _to_image_point(geometry, *geometry["style"]["part"])
    jitter = 0.15 * min(geometry["half"])
    part_x += rng.uniform(-jitter, jitter)
    part_y += rng.uniform(-jitter, jitter)
    nearest = int(np.argmin((xs - part_x) ** 2 + (ys - part_y) ** 2))
    cx, cy = xs[nearest], ys[nearest]
    angle = rng.uniform(0, math.pi)
    stretch = rng.uniform(1.0, 1.6)
    du = (xs - cx) * math.cos(angle) + (ys - cy) * math.sin(angle)
    dv = -(xs - cx) * math.sin(angle) + (ys - cy) * math.cos(angle)
    distance = du * du + (stretch * dv) ** 2
    target = int(round(rng.uniform(*_SEED_FRACTION) * np.count_nonzero(visible)))
    keep = np.argsort(distance, kind="stable")[:max(1, min(target, len(ys)))]
    blob = np.zeros(visible.shape, bool)
    blob[ys[keep], xs[keep]] = True
    return blob


def _saliency(rng, labels, height, width):
    """A saliency map like a salient-object detector's: high, soft-edged objects on a low,
    noisy background, with an occasional small false-positive blob."""
    foreground = (labels > 0).astype(np.float32)
    strength = rng.uniform(0.85, 1.0) + 0.08 * _smooth_noise(rng, height, width, 4)
    sal = foreground * np.clip(strength, 0.0, 1.0)
    if rng.random() < 0.15:
        blob = np.zeros((height, width), np.uint8)
        centre = (int(rng.integers(width)), int(rng.integers(height)))
        radius = max(2, int(0.06 * min(height, width)))
        cv2.circle(blob, centre, radius, 1, -1)
        sal = np.maximum(sal, blob.astype(np.float32) * rng.uniform(0.3, 0.6))
    sigma = rng.uniform(1.0, 2.0)
    sal = cv2.GaussianBlur(sal, (0, 0), sigma)
    background = rng.uniform(0.01, 0.03) + 0.015 * _smooth_noise(rng, height, width, 5)
    sal = np.maximum(sal, background) + rng.normal(0.0, 0.008, size=sal.shape)
    return np.clip(np.round(sal * 255.0), 0, 255).astype(np.uint8)


def _ground_truth(labels):
    """Labels with a 255 band where the 3 x 3 neighbourhood holds more than one label."""
    kernel = np.ones((3, 3), np.uint8)
    border = cv2.dilate(labels, kernel) != cv2.erode(labels, kernel)
    return np.where(border, np.uint8(IGNORE), labels)


def generate_sample(rng, height, width, classes, num_classes=NUM_FG_CLASSES):
    """One synthetic sample: BGR image, saliency, initial seeds and ground truth (all uint8),
    and "objects": (class, full uint8 0/1 mask) of each object, back to front, so that painting
    them in order gives the ground truth without its ignore band. ``classes`` are in
    1..``num_classes``, the classes whose styles are spread over the colour circle."""
    geometries, masks, labels = _layout(rng, height, width, classes, num_classes)
    image = _render_background(rng, height, width)
    owners = _owners(masks, height, width)
    seeds = np.zeros((height, width), np.uint8)
    for index, (geometry, mask) in enumerate(zip(geometries, masks)):
        appearance = _object_appearance(rng, geometry, height, width)
        alpha = cv2.GaussianBlur(mask.astype(np.float32), (0, 0), 0.6)[..., None]
        image = alpha * appearance + (1.0 - alpha) * image
        visible = (owners == index).astype(np.uint8)
        seeds[_seed_blob(rng, geometry, visible)] = geometry["cls"]
    image += rng.normal(0.0, 3.0, size=image.shape).astype(np.float32)
    image = np.clip(np.round(image), 0, 255).astype(np.uint8)
    return {"image": image, "sal": _saliency(rng, labels, height, width), "seed": seeds,
            "gt": _ground_truth(labels),
            "objects": [(g["cls"], m) for g, m in zip(geometries, masks)]}
