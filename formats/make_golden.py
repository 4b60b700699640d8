"""Write golden .nnc files and their reference decodes (run after shipping a model or
changing what the writer writes).

    python formats/make_golden.py --tag 2026-11-22
    python formats/make_golden.py --tag 2026-11-30 --cases srgb-icc-q40   # some cases only
    python formats/make_golden.py --tag 2026-11-30-4x4 --cases kodim23-crop-q50 kodim23-gray-q20
    python formats/make_golden.py --tag 2026-12-06 --cases phone-exif-xmp-q40

Golden files are never regenerated: they pin the format. New ones are added under a new tag
(file names ``{tag}-{case}``) next to the old ones, whose weights stay installed so the old
files keep decoding.
"""
import argparse
import hashlib
import io
import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageCms

import nnc

HERE = Path(__file__).resolve().parent / "golden"
KODAK = Path(__file__).resolve().parents[2] / "shared" / "data" / "kodak"


def _with_profile(arr: np.ndarray) -> bytes:
    """PNG bytes of ``arr`` carrying LittleCMS's sRGB profile."""
    buf = io.BytesIO()
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    Image.fromarray(arr).save(buf, format="PNG", icc_profile=profile)
    return buf.getvalue()


XMP = (b'<?xpacket begin="\xef\xbb\xbf" id="W5M0MpCehiHzreSzNTczkc9d"?>'
       b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
       b'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description '
       b'xmlns:dc="http://purl.org/dc/elements/1.1/" '
       b'xmlns:tiff="http://ns.adobe.com/tiff/1.0/" tiff:Orientation="6">'
       b'<dc:title><rdf:Alt><rdf:li xml:lang="x-default">Golden parrots</rdf:li></rdf:Alt>'
       b'</dc:title></rdf:Description></rdf:RDF></x:xmpmeta><?xpacket end="w"?>')


def _phone_jpeg(arr: np.ndarray) -> bytes:
    """JPEG bytes of ``arr`` as a phone writes a portrait photo: stored sideways with EXIF
    orientation 6, make, model, dates and a GPS position, an XMP packet and an ICC profile
    (LittleCMS's sRGB)."""
    from PIL.ExifTags import IFD
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = "Golden Phone Co.", "GP-1"      # make, model
    exif[0x0132] = "2026:12:06 12:00:00"                          # date and time
    exif[0x0112] = 6                                              # orientation
    exif.get_ifd(IFD.Exif)[0x9003] = "2026:12:06 12:00:00"       # when shot
    gps = exif.get_ifd(IFD.GPSInfo)
    gps[1], gps[2], gps[3], gps[4] = "N", (48.0, 51.0, 29.5), "E", (2.0, 17.0, 40.2)
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=95, exif=exif, xmp=XMP,
                              icc_profile=profile)
    return buf.getvalue()


def main():
    HERE.mkdir(exist_ok=True)
    k23 = np.asarray(Image.open(KODAK / "kodim23.png").convert("RGB"))
    cases = {
        "kodim23-crop-q50": (k23[100:196, 300:428], dict(quality=0.5, seed=0)),
        "kodim23-gray-q20": (np.asarray(Image.fromarray(k23[:70, :90]).convert("L")),
                             dict(quality=0.2, seed=5)),
        "tiny-rgba-q90": (np.dstack([k23[:5, :3], np.full((5, 3), 200, np.uint8)]),
                          dict(quality=0.9, seed=1)),
        # since 2026-11-30: a colour profile in an iCCP section
        "srgb-icc-q40": (_with_profile(k23[200:248, 40:104]), dict(quality=0.4, seed=2)),
        # since 2026-12-06: EXIF and XMP in eXIf and xMPd sections (and the ICC profile)
        "phone-exif-xmp-q40": (_phone_jpeg(k23[40:88, 300:364]), dict(quality=0.4, seed=3)),
    }
    from nnc.model.weights import default_model_name
    ap = argparse.ArgumentParser()
    ap.add_argument("--tag", required=True)
    ap.add_argument("--cases", nargs="+", choices=sorted(cases), default=sorted(cases))
    args = ap.parse_args()
    path = HERE / "golden.json"
    manifest = json.loads(path.read_text()) if path.exists() else {"files": []}
    for entry in manifest["files"]:        # files from before tags name their model once
        entry.setdefault("model", manifest.get("model"))
    manifest.pop("model", None)
    for case, (arr, kw) in cases.items():
        if case not in args.cases:
            continue
        name = f"{args.tag}-{case}"
        if (HERE / f"{name}.nnc").exists():
            raise SystemExit(f"{name}.nnc exists: golden files are never regenerated")
        data = nnc.compress(arr, **kw)
        (HERE / f"{name}.nnc").write_bytes(data)
        dec = nnc.decompress(data)
        dec.save(HERE / f"{name}.png")
        manifest["files"].append({"nnc": f"{name}.nnc", "decoded": f"{name}.png",
                                  "model": default_model_name(), "size": list(dec.size),
                                  "mode": dec.mode,
                                  **({"icc_profile_bytes": len(dec.info["icc_profile"])}
                                     if "icc_profile" in dec.info else {}),
                                  **{f"{k}_sha256": hashlib.sha256(dec.info[k]).hexdigest()
                                     for k in ("exif", "xmp") if k in dec.info}, **kw})
    path.write_text(json.dumps(manifest, indent=2) + "\n")


if __name__ == "__main__":
    main()
