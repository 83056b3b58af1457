"""Object detection models behind one interface.

Every backend takes a batch of BGR images (numpy uint8, HxWx3, any sizes) and returns, per image, a list
of `Found`: class id, COCO label as a subject token, score, and a box normalised to 0..1 of that image.

Backends:
  - `OpenCvYolo`: Darknet YOLO (COCO YOLOv4-tiny by default, installed by `make setup`) on OpenCV DNN;
    CPU, or OpenCV's CUDA backend when the installed OpenCV was built with it.
  - `UltralyticsYolo`: any model file the `ultralytics` package loads (.pt, .onnx, .engine), on CUDA,
    a Jetson's GPU or TensorRT when present, offline.

`load_detector(settings)` builds the configured one, or raises ModelError naming the file.
"""

# INTERFACE (agreed with the detector service; implemented by the backends below):
#
# @dataclass(frozen=True, slots=True)
# class Found:
#     class_id: int
#     label: str                                   # label token, e.g. "person", "traffic_light"
#     score: float                                 # 0..1
#     box: tuple[float, float, float, float]       # x1, y1, x2, y2 normalised to 0..1, clipped
#
# class ObjectDetector(Protocol):
#     name: str          # model name reported in Detection.model, e.g. "yolov4-tiny", "yolov8n"
#     device: str        # where it runs, for logs and benchmarks: "cpu", "opencv-cuda", "cuda:0", ...
#     labels: tuple[str, ...]   # label token per class id
#     def detect(self, images: Sequence[np.ndarray], min_score: float) -> list[list[Found]]: ...
#
# def load_detector(settings: DetectorSettings) -> ObjectDetector   # raises ModelError naming the file
