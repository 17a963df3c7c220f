"""A drawn face whose features move by FACS Action Units (the built-in synthetic dataset's renderer).

``Identity`` holds what stays fixed for a person (face shape, skin tone, feature placement, hair,
background); ``render_frame(identity, aus, size)`` draws one RGB frame for an 18-vector of AU
intensities in [0, 5] (``audfer.AUS`` order). Each AU moves the part of the face it moves on a
real face:

| AU | drawn as |
|---|---|
| AU01 inner brow raiser | inner brow ends up |
| AU02 outer brow raiser | outer brow ends up |
| AU04 brow lowerer | brows down and together, vertical furrows between them |
| AU05 upper lid raiser | upper lid up (more white above the iris) |
| AU06 cheek raiser | cheeks up and rounder, lower lid up, crow's feet |
| AU07 lid tightener | both lids narrow the eye |
| AU09 nose wrinkler | wrinkles across the nose bridge, nostrils up |
| AU10 upper lip raiser | upper lip up, nasolabial folds deepen |
| AU12 lip corner puller | lip corners up and out |
| AU14 dimpler | corners pulled in, dimples beside them |
| AU15 lip corner depressor | lip corners down |
| AU17 chin raiser | chin boss pushed up, lower lip up, chin wrinkles |
| AU20 lip stretcher | corners pulled sideways, lips flattened |
| AU23 lip tightener | lips thinner and narrower |
| AU25 lips part | gap between the lips (teeth show) |
| AU26 jaw drop | jaw and chin down, mouth opens wide |
| AU28 lip suck | lips rolled in (almost no red lip) |
| AU45 blink | lids closed |

Drawing uses OpenCV primitives with sub-pixel coordinates (``shift``) and anti-aliasing, so a frame
costs tens of microseconds; geometry is in face units (the face's half-width = 1) so any output
size works.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from audfer.vocab import AUS

_SHIFT = 4
_ONE = 1 << _SHIFT
_A = {a: i for i, a in enumerate(AUS)}


@dataclass(frozen=True)
class Identity:
    """A synthetic person: everything that does not change over a clip."""

    face_w: float  #: half-width of the face in image fractions
    face_h: float  #: half-height (forehead to chin) / face_w
    skin: tuple[int, ...]  #: RGB
    eye_dx: float
    eye_y: float
    eye_w: float
    eye_h: float
    iris: tuple[int, ...]
    brow_gap: float
    brow_thick: float
    brow_color: tuple[int, ...]
    nose_len: float
    mouth_y: float
    mouth_w: float
    lip: float
    lip_color: tuple[int, ...]
    hair: tuple[int, ...]
    hair_len: float
    background: tuple[tuple[int, ...], tuple[int, ...]]
    expressiveness: float


def random_identity(rng: np.random.Generator) -> Identity:
    """Draw a person: face shape, skin tone (light to dark), feature placement, hair, background."""
    tone = rng.uniform(0, 1)
    light, dark = np.array([242, 208, 180]), np.array([92, 58, 40])
    skin = tuple(int(v) for v in np.clip(light + (dark - light) * tone + rng.normal(0, 8, 3), 0, 255))
    lip_color = tuple(
        int(v) for v in np.clip(np.array(skin) * np.array([0.82, 0.52, 0.52]) + rng.normal(0, 6, 3), 0, 255)
    )
    hair = tuple(
        int(v)
        for v in np.clip(
            rng.choice([[30, 22, 18], [90, 60, 35], [150, 110, 60], [200, 170, 110], [110, 110, 110]])
            + rng.normal(0, 10, 3),
            0,
            255,
        )
    )
    bg1 = tuple(int(v) for v in rng.integers(40, 220, 3))
    bg2 = tuple(int(v) for v in np.clip(np.array(bg1) + rng.integers(-60, 60, 3), 0, 255))
    return Identity(
        face_w=rng.uniform(0.33, 0.39),
        face_h=rng.uniform(1.22, 1.42),
        skin=skin,
        eye_dx=rng.uniform(0.36, 0.46),
        eye_y=rng.uniform(-0.42, -0.28),
        eye_w=rng.uniform(0.17, 0.22),
        eye_h=rng.uniform(0.065, 0.09),
        iris=tuple(int(v) for v in rng.integers(20, 120, 3)),
        brow_gap=rng.uniform(0.17, 0.24),
        brow_thick=rng.uniform(0.035, 0.07),
        brow_color=tuple(int(v) for v in np.clip(np.array(hair) * 0.7, 0, 255)),
        nose_len=rng.uniform(0.30, 0.40),
        mouth_y=rng.uniform(0.50, 0.62),
        mouth_w=rng.uniform(0.30, 0.40),
        lip=rng.uniform(0.05, 0.085),
        lip_color=lip_color,
        hair=hair,
        hair_len=rng.uniform(0.0, 1.0),
        background=(bg1, bg2),
        expressiveness=rng.uniform(0.7, 1.25),
    )


class _Canvas:
    """Face-unit -> pixel mapping and thin wrappers over OpenCV's fixed-point drawing."""

    def __init__(self, img: np.ndarray, cx: float, cy: float, unit: float) -> None:
        self.img, self.cx, self.cy, self.unit = img, cx, cy, unit

    def pts(self, xy) -> np.ndarray:
        xy = np.asarray(xy, dtype=np.float64)
        px = np.empty_like(xy)
        px[..., 0] = self.cx + xy[..., 0] * self.unit
        px[..., 1] = self.cy + xy[..., 1] * self.unit
        return np.round(px * _ONE).astype(np.int32)

    def poly(self, xy, color) -> None:
        import cv2

        cv2.fillPoly(self.img, [self.pts(xy)], color, cv2.LINE_AA, _SHIFT)

    def line(self, xy, color, width: float) -> None:
        import cv2

        cv2.polylines(
            self.img, [self.pts(xy)], False, color, max(1, int(round(width * self.unit))), cv2.LINE_AA, _SHIFT
        )

    def ellipse(self, centre, axes, color, angle: float = 0.0) -> None:
        import cv2

        c = self.pts(centre)
        ax = (max(1, int(round(axes[0] * self.unit * _ONE))), max(1, int(round(axes[1] * self.unit * _ONE))))
        cv2.ellipse(self.img, (int(c[0]), int(c[1])), ax, angle, 0, 360, color, -1, cv2.LINE_AA, _SHIFT)


def _arc(x0: float, x1: float, y_end0: float, y_end1: float, bulge: float, n: int = 9) -> np.ndarray:
    """Points from (x0, y_end0) to (x1, y_end1) bowed by ``bulge`` (negative = upwards) in the middle."""
    t = np.linspace(0.0, 1.0, n)
    x = x0 + (x1 - x0) * t
    y = y_end0 + (y_end1 - y_end0) * t + bulge * 4 * t * (1 - t)
    return np.stack([x, y], axis=1)


def _mix(c1, c2, w: float) -> tuple[int, ...]:
    w = float(np.clip(w, 0.0, 1.0))
    return tuple(int(round(a * (1 - w) + b * w)) for a, b in zip(c1, c2))


def render_frame(p: Identity, aus: np.ndarray, size: int, gain: float = 1.0) -> np.ndarray:
    """One RGB uint8 frame ``(size, size, 3)`` of person ``p`` showing AU intensities ``aus`` (18, in [0, 5]).

    ``gain`` exaggerates every AU's movement (1: the proportions above; the demo's set uses 1.5 so that
    the AUs stay visible at 48 px)."""
    a = {name: float(np.clip(aus[i], 0, 5)) / 5.0 * gain for name, i in _A.items()}
    img = np.empty((size, size, 3), np.uint8)
    img[: size // 2] = p.background[0]
    img[size // 2 :] = p.background[1]
    unit = p.face_w * size
    cv = _Canvas(img, size / 2, size * 0.56, unit)
    skin = p.skin
    shade = _mix(skin, (0, 0, 0), 0.22)
    jaw = 0.22 * a["AU26"]

    # hair behind, neck, face (upper and lower half-ellipses; the jaw drop lengthens the lower one)
    cv.ellipse((0, -0.25), (1.18, p.face_h * 0.95 + 0.25 * p.hair_len), p.hair)
    cv.poly([[-0.45, 0.8], [0.45, 0.8], [0.55, 2.0], [-0.55, 2.0]], shade)
    t = np.linspace(0, np.pi, 25)
    upper = np.stack([np.cos(t), -np.sin(t) * p.face_h], 1)
    lower = np.stack([np.cos(t[::-1]) * (1 - 0.05 * jaw), np.sin(t[::-1]) * (p.face_h * 0.95 + jaw)], 1)
    cv.poly(np.concatenate([upper, lower]), skin)
    cv.poly(
        [[-1.02, -p.face_h * 0.55], [1.02, -p.face_h * 0.55], [0.95, -p.face_h * 1.02], [-0.95, -p.face_h * 1.02]],
        p.hair,
    )

    # cheeks (AU06 raises and rounds them, AU12 helps)
    lift = 0.10 * a["AU06"] + 0.05 * a["AU12"]
    for s in (-1, 1):
        cv.ellipse(
            (s * 0.52, 0.22 - lift),
            (0.24 + 0.05 * a["AU06"], 0.15 + 0.04 * a["AU06"]),
            _mix(skin, (200, 90, 90), 0.10 + 0.25 * a["AU06"]),
        )

    # eyes: white, iris, then lids painted over in skin; AU05 opens, AU06/AU07 narrow, AU45 closes
    shut = max(0.0, 1 - a["AU45"])
    open_up = p.eye_h * max(0.0, 1 + 0.9 * a["AU05"] - 0.45 * a["AU07"] - 0.25 * a["AU06"]) * shut
    open_lo = p.eye_h * max(0.0, 0.8 - 0.45 * a["AU06"] - 0.35 * a["AU07"]) * shut
    for s in (-1, 1):
        ex, ey = s * p.eye_dx, p.eye_y
        x0, x1 = ex - p.eye_w, ex + p.eye_w
        top = _arc(x0, x1, ey, ey, -max(open_up, 0.004))
        bottom = _arc(x1, x0, ey, ey, max(open_lo, 0.004))
        cv.poly(np.concatenate([top, bottom]), (245, 245, 240))
        if open_up + open_lo > 0.02:
            cv.ellipse((ex, ey - 0.1 * (open_up - open_lo)), (p.eye_h * 1.05, p.eye_h * 1.05), p.iris)
            cv.ellipse((ex, ey - 0.1 * (open_up - open_lo)), (p.eye_h * 0.45, p.eye_h * 0.45), (10, 10, 10))
        lid = top.copy()
        cv.poly(np.concatenate([lid, [[x1 + 0.03, ey - 0.3], [x0 - 0.03, ey - 0.3]]]), skin)
        cv.poly(np.concatenate([bottom, [[x0 - 0.03, ey + 0.25], [x1 + 0.03, ey + 0.25]]]), skin)
        cv.line(top, (40, 30, 30), 0.022)
        if a["AU06"] > 0.1:  # crow's feet
            col = _mix(skin, (60, 40, 30), 0.6 * a["AU06"])
            for k in (-1, 0, 1):
                cv.line(
                    [
                        [s * (p.eye_dx + p.eye_w + 0.04), ey + 0.04 * k],
                        [s * (p.eye_dx + p.eye_w + 0.14), ey + 0.09 * k],
                    ],
                    col,
                    0.012,
                )

    # brows: inner/mid/outer points; AU01 inner up, AU02 outer up, AU04 down and together
    for s in (-1, 1):
        base = p.eye_y - p.eye_h - p.brow_gap + 0.10 * a["AU04"] - 0.05 * a["AU05"]
        inner = [s * (p.eye_dx - p.eye_w * 0.9 - 0.06 * a["AU04"]), base - 0.20 * a["AU01"] + 0.06 * a["AU04"]]
        mid = [s * p.eye_dx, base - 0.05 - 0.10 * a["AU01"] - 0.10 * a["AU02"]]
        outer = [s * (p.eye_dx + p.eye_w * 1.15), base + 0.02 - 0.20 * a["AU02"]]
        cv.line(np.array([inner, mid, outer]), p.brow_color, p.brow_thick * (1 + 0.3 * a["AU04"]))
    if a["AU04"] > 0.1:  # glabella furrows
        col = _mix(skin, (50, 30, 25), 0.7 * a["AU04"])
        y = p.eye_y - p.eye_h - p.brow_gap
        for x in (-0.06, 0.06):
            cv.line([[x, y - 0.12], [x * 0.8, y + 0.08]], col, 0.016)
    if a["AU01"] + a["AU02"] > 0.4:  # forehead lines
        col = _mix(skin, (60, 40, 30), 0.5 * (a["AU01"] + a["AU02"]) / 2)
        for k in range(2):
            y = p.eye_y - p.eye_h - p.brow_gap - 0.22 - 0.1 * k
            cv.line(_arc(-0.45, 0.45, y, y, -0.04, 7), col, 0.012)

    # nose: bridge, tip, nostrils (AU09 wrinkles and lifts, AU10 lifts a little)
    nose_up = 0.05 * a["AU09"] + 0.03 * a["AU10"]
    tip = p.eye_y + p.nose_len + 0.18
    cv.line([[0.0, p.eye_y + 0.02], [0.05, tip - 0.05 - nose_up]], shade, 0.02)
    for s in (-1, 1):
        cv.ellipse((s * 0.09, tip - nose_up), (0.075 + 0.02 * a["AU09"], 0.045), _mix(skin, (60, 30, 25), 0.45))
    if a["AU09"] > 0.1:
        col = _mix(skin, (50, 30, 25), 0.8 * a["AU09"])
        for k in range(3):
            y = p.eye_y + 0.05 + 0.05 * k
            cv.line([[-0.08, y], [0.08, y - 0.01]], col, 0.014)
    fold = 0.3 + 0.7 * max(a["AU10"], a["AU12"], a["AU09"] * 0.8)
    for s in (-1, 1):  # nasolabial folds
        cv.line(
            [[s * 0.17, tip - 0.02], [s * (p.mouth_w + 0.08 + 0.08 * a["AU12"]), p.mouth_y + 0.02 - 0.05 * a["AU12"]]],
            _mix(skin, (70, 40, 30), 0.15 + 0.45 * fold),
            0.014,
        )

    # mouth
    half = p.mouth_w * max(
        0.35,
        1
        + 0.30 * a["AU12"]
        + 0.40 * a["AU20"]
        - 0.22 * a["AU14"]
        - 0.25 * a["AU23"]
        - 0.15 * a["AU28"]
        - 0.12 * a["AU26"],
    )
    my = p.mouth_y + jaw * 0.55 - 0.06 * a["AU17"]
    corner_y = my - 0.16 * a["AU12"] + 0.16 * a["AU15"] + 0.02 * a["AU20"]
    gap = (0.09 * a["AU25"] + 0.30 * a["AU26"]) * max(0.0, 1 - 0.7 * a["AU23"])
    thick = p.lip * max(0.15, 1 - 0.55 * a["AU23"]) * max(0.1, 1 - 0.85 * a["AU28"]) * max(0.3, 1 - 0.35 * a["AU20"])
    up_in = my - gap / 2 - 0.07 * a["AU10"]
    lo_in = my + gap / 2 - 0.04 * a["AU17"]
    smile = 0.05 * a["AU12"] - 0.05 * a["AU15"]
    inner_top = _arc(-half, half, corner_y, corner_y, up_in - corner_y + smile * 0.3)
    inner_bot = _arc(half, -half, corner_y, corner_y, lo_in - corner_y + smile)
    if gap > 0.01:
        cv.poly(np.concatenate([inner_top, inner_bot]), (55, 20, 25))
        teeth = _arc(-half * 0.75, half * 0.75, up_in + 0.005, up_in + 0.005, 0.02, 7)
        cv.poly(np.concatenate([teeth, teeth[::-1] + [0, min(gap * 0.45, 0.07)]]), (235, 232, 220))
    outer_top = _arc(-half, half, corner_y, corner_y, up_in - corner_y + smile * 0.3 - thick * 1.1)
    outer_bot = _arc(half, -half, corner_y, corner_y, lo_in - corner_y + smile + thick * 1.3)
    cv.poly(np.concatenate([outer_top, inner_top[::-1]]), p.lip_color)
    cv.poly(np.concatenate([inner_bot, outer_bot[::-1]]), p.lip_color)
    cv.line(inner_top, _mix(p.lip_color, (30, 10, 10), 0.5), 0.012)
    if a["AU14"] > 0.1:  # dimples
        for s in (-1, 1):
            cv.ellipse((s * (half + 0.07), corner_y), (0.025, 0.035), _mix(skin, (60, 35, 30), 0.7 * a["AU14"]))
    if a["AU17"] > 0.1:  # chin boss and wrinkles
        cy = p.face_h * 0.95 + jaw - 0.22
        cv.ellipse((0, cy - 0.04 * a["AU17"]), (0.22, 0.11), _mix(skin, (255, 255, 255), 0.12 * a["AU17"]))
        col = _mix(skin, (60, 35, 30), 0.6 * a["AU17"])
        for x in (-0.08, 0.0, 0.08):
            cv.ellipse((x, cy - 0.02), (0.012, 0.012), col)
    return img


def head_motion(rng: np.random.Generator, n: int, amount: float = 1.0) -> np.ndarray:
    """Smooth per-frame head pose ``(n, 4)``: dx, dy (image fractions), rotation (degrees), scale.
    ``amount`` scales every movement and the offsets from the centred pose (0: a still, centred head)."""
    t = np.arange(n, dtype=np.float64)[:, None]
    freq = rng.uniform(0.05, 0.25, (1, 4))
    phase = rng.uniform(0, 2 * np.pi, (1, 4))
    amp = np.array([[0.04, 0.03, 6.0, 0.05]]) * rng.uniform(0.2, 1.0, (1, 4))
    base = np.array([[rng.normal(0, 0.03), rng.normal(0, 0.03), rng.normal(0, 4), rng.uniform(0.9, 1.1)]])
    pose = base + amp * np.sin(2 * np.pi * freq * t + phase)
    return (pose - [[0, 0, 0, 1]]) * amount + [[0, 0, 0, 1]]


def camera(frames: np.ndarray, pose: np.ndarray, rng: np.random.Generator, *, noise: float = 4.0) -> np.ndarray:
    """Apply head motion (affine warp), a lighting gradient that drifts over the clip, and sensor noise."""
    import cv2

    n, size = frames.shape[0], frames.shape[1]
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size - 0.5
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(angle) * xx + np.sin(angle) * yy)[..., None]
    strength = rng.uniform(0.05, 0.2)
    gain = rng.uniform(0.85, 1.15)
    drift = rng.uniform(-0.05, 0.05)
    sigma = rng.uniform(0.5, 1.5) * noise
    out = np.empty_like(frames)
    for i in range(n):
        dx, dy, rot, scale = pose[i]
        m = cv2.getRotationMatrix2D((size / 2, size / 2), rot, scale)
        m[:, 2] += (dx * size, dy * size)
        warped = cv2.warpAffine(frames[i], m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        light = (gain + drift * i / max(n - 1, 1)) * (1 + strength * ramp)
        noisy = warped.astype(np.float32) * light + rng.standard_normal(warped.shape, dtype=np.float32) * sigma
        out[i] = np.clip(noisy, 0, 255).astype(np.uint8)
    return out
