"""QR codes of short links (admin/qr.py): what both the dashboard and the API hand out."""

from __future__ import annotations

import struct
import xml.etree.ElementTree as ET

import segno

from admin.qr import BORDER, SCALE, qr_code

URL = "http://sho.rt/Xk3dP9a"
SVG = "{http://www.w3.org/2000/svg}"


def test_png_is_the_code_of_the_url_at_its_scale() -> None:
    png = qr_code(URL, "png")
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = struct.unpack(">II", png[16:24])  # the IHDR chunk comes first
    modules = len(segno.make(URL, error="m", micro=False).matrix)
    assert width == height == (modules + 2 * BORDER) * SCALE


def test_svg_is_a_titled_document_without_xml_declaration() -> None:
    svg = qr_code(URL, "svg")
    assert svg.startswith(b"<svg")  # can be inlined into a page as it is
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    assert root.findtext(f"{SVG}title") == URL


def test_same_url_same_image() -> None:
    assert qr_code(URL, "svg") == qr_code(URL, "svg")
    assert qr_code(URL, "png") != qr_code(URL + "b", "png")
