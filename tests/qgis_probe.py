"""Open a workspace's stored QGIS project with PyQGIS and report what QGIS sees (JSON).

Run by tests/test_qgis_styles.py with Debian's /usr/bin/python3 (python3-qgis is built
for it), headless: ``QT_QPA_PLATFORM=offscreen python3 tests/qgis_probe.py REQUEST.json``.
The request gives the project URI, a point (lon, lat) to sample and an output PNG path;
the answer lists every layer (valid, feature count, renderer rules, the default style QGIS
loads from the layer_styles table) and the colour of the rendered pixel at the point.
"""

import json
import os
import sys

from qgis.core import (
    QgsApplication,
    QgsCoordinateReferenceSystem,
    QgsMapRendererSequentialJob,
    QgsMapSettings,
    QgsProject,
    QgsRectangle,
    QgsVectorLayer,
)
from qgis.PyQt.QtCore import QSize
from qgis.PyQt.QtGui import QColor


def main() -> None:
    with open(sys.argv[1], encoding="utf-8") as f:
        req = json.load(f)
    app = QgsApplication([], False)
    app.initQgis()
    out = {"layers": {}, "tree": []}
    project = QgsProject.instance()
    out["read"] = bool(project.read(req["uri"]))
    root = project.layerTreeRoot()
    for group in root.children():
        out["tree"].append(
            [group.name(), [c.name() for c in group.children()]]
        )
    for lid, layer in project.mapLayers().items():
        info = {
            "name": layer.name(),
            "valid": layer.isValid(),
            "crs": layer.crs().authid(),
            "provider": layer.providerType(),
        }
        if isinstance(layer, QgsVectorLayer):
            info["count"] = layer.featureCount()
            info["fields"] = [f.name() for f in layer.fields()]
            renderer = layer.renderer()
            info["renderer"] = renderer.type() if renderer else None
            if renderer is not None and renderer.type() == "RuleRenderer":
                info["rules"] = [
                    [r.label(), r.filterExpression(), r.symbol().color().name()]
                    for r in renderer.rootRule().children()
                ]
            if layer.isSpatial():
                # the style QGIS finds for this table in layer_styles (as when it is
                # opened on its own, outside the project)
                alone = QgsVectorLayer(layer.source(), "alone", layer.providerType())
                _msg, ok = alone.loadDefaultStyle()
                info["default_style_loaded"] = bool(ok)
                r2 = alone.renderer()
                info["default_rules"] = (
                    [[r.label(), r.symbol().color().name()] for r in r2.rootRule().children()]
                    if r2 is not None and r2.type() == "RuleRenderer"
                    else None
                )
                info["default_labels"] = bool(alone.labelsEnabled())
        out["layers"][lid] = info
    # render the visible layers of the project around the sample point
    lon, lat = req["point"]
    half = req.get("half_width_deg", 0.0005)
    settings = QgsMapSettings()
    visible = [lyr for lyr in root.checkedLayers()]
    settings.setLayers(visible)
    settings.setDestinationCrs(QgsCoordinateReferenceSystem("EPSG:4490"))
    settings.setExtent(QgsRectangle(lon - half, lat - half, lon + half, lat + half))
    settings.setOutputSize(QSize(101, 101))
    settings.setBackgroundColor(QColor(255, 255, 255))
    # QGIS places a polygon's label in the middle of its visible part, i.e. on the sampled
    # pixel of this small window: the colour check renders the symbols without labels.
    settings.setFlag(QgsMapSettings.DrawLabeling, False)
    job = QgsMapRendererSequentialJob(settings)
    job.start()
    job.waitForFinished()
    image = job.renderedImage()
    image.save(req["png"])
    out["visible"] = [lyr.name() for lyr in visible]
    out["pixel"] = QColor(image.pixel(50, 50)).name()
    print(json.dumps(out, ensure_ascii=False))
    sys.stdout.flush()
    # QGIS 3.22 can crash tearing down a loaded project (exitQgis); the answer is out.
    os._exit(0)


main()
