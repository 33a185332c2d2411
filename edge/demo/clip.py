"""A sample video of the demo scene, for the documented commands that read a video file.

    python -m edge.demo.clip clip.mp4                 # 150 frames, 320x240, 15 fps, seed 0

The frames are the ones ``--camera demo`` shows (same seed, same frames), written with OpenCV's
VideoWriter; the file appears whole or not at all.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from edge.errors import CameraError
from edge.outputs import atomic_path

CODECS = {".mp4": "mp4v", ".avi": "MJPG", ".mkv": "MJPG"}


def write_clip(path: str | Path, frames: int = 150, fps: float = 15.0,
               size: tuple[int, int] = (320, 240), seed: int = 0) -> Path:
    """Render ``frames`` frames of the demo scene into the video file ``path``.

    Raises:
        CameraError: the suffix is not .mp4/.avi/.mkv, or OpenCV cannot write there.
    """
    target = Path(path)
    codec = CODECS.get(target.suffix.lower())
    if codec is None:
        raise CameraError(f"{target}: a clip must end in {', '.join(CODECS)}")
    try:
        # VideoWriter picks the container from the name, so the temp name keeps the suffix.
        with atomic_path(target, suffix=target.suffix) as temp:
            _render(temp, codec, frames, fps, size, seed)
    except OSError as e:
        raise CameraError(f"{target}: cannot write a video there: {e.strerror or e}") from e
    return target


def _render(temp: Path, codec: str, frames: int, fps: float, size: tuple[int, int],
            seed: int) -> None:
    import cv2

    from edge.demo.scene import DemoScene

    writer = cv2.VideoWriter(str(temp), cv2.VideoWriter.fourcc(*codec), fps, size)
    try:
        if not writer.isOpened():
            raise CameraError(f"{temp.name}: OpenCV cannot write a video there")
        scene = DemoScene(seed=seed, size=size)
        for _ in range(frames):
            rgb, _label = scene.next_frame()
            writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    finally:
        writer.release()


def main(argv: list[str] | None = None) -> int:
    from edge.cli.common import add_logging_args, configure_logging, run_command

    parser = argparse.ArgumentParser(prog="python -m edge.demo.clip",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("output", type=Path, metavar="CLIP.mp4",
                        help="video file to write (.mp4, .avi or .mkv)")
    parser.add_argument("--frames", type=int, default=150, metavar="N",
                        help="frames to render (default: 150)")
    parser.add_argument("--fps", type=float, default=15.0, help="frame rate (default: 15)")
    parser.add_argument("--seed", type=int, default=0,
                        help="scene seed; 0 gives the frames of --camera demo (default: 0)")
    add_logging_args(parser)
    args = parser.parse_args(argv)
    if args.frames < 1 or args.fps <= 0:
        parser.error("--frames and --fps must be positive")
    configure_logging(args.verbose, args.quiet)
    return run_command(parser.prog, lambda: _write(args))


def _write(args: argparse.Namespace) -> int:
    write_clip(args.output, args.frames, args.fps, seed=args.seed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
