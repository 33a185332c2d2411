"""Pure decoders: a model's raw output arrays in, boxes, points, masks or classes out.

One module per output layout (:mod:`classes`, :mod:`ssd_postprocess`, :mod:`yolo`,
:mod:`anchors`, :mod:`segment`, :mod:`pose`), one non-maximum suppression (:mod:`nms`) and one
mapping between the model input's pixels and the original frame's (:mod:`geometry`). Nothing
here imports an interpreter, OpenCV or the rest of edge: every function takes numpy arrays and a
small spec, so the tests drive them with plain data.
"""
