"""Camera metadata (spec §6c): a phone photo's EXIF and XMP travel in eXIf and xMPd sections,
come back in JPEG, PNG and WebP outputs, and are left out with --strip."""
import io
import zlib

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image, ImageCms
from PIL.ExifTags import IFD

import nnc
from nnc import container
from nnc.cli import main
from nnc.errors import FormatError
from conftest import PHONE_XMP, phone_jpeg, png_bytes, smooth_image

SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
TAGS = lambda data: [t for t, *_ in container.iter_sections(data)]   # noqa: E731


@pytest.fixture(scope="module")
def phone(tmp_path_factory):
    """A phone's portrait JPEG (stored 56 wide, 40 high, orientation 6) and its .nnc."""
    folder = tmp_path_factory.mktemp("phone")
    jpg = folder / "IMG_0001.jpg"
    jpg.write_bytes(phone_jpeg(smooth_image(40, 56), SRGB))
    r = CliRunner().invoke(main, ["compress", "--refine", "0", str(jpg),
                                  str(folder / "p.nnc")])
    assert r.exit_code == 0, r.output
    return jpg, folder / "p.nnc"


def _xmp(im: Image.Image) -> bytes | None:
    x = im.info.get("xmp") or im.info.get("XML:com.adobe.xmp")
    return x.encode() if isinstance(x, str) else x


def test_a_phone_photo_keeps_its_metadata_in_jpeg_png_and_webp(phone, tmp_path):
    jpg, packed = phone
    assert TAGS(packed.read_bytes()) == ["HEAD", "Z2SA", "Z2IX", "Z1SA", "Z1IX", "iCCP",
                                         "eXIf", "xMPd", "END "]
    for ext in (".jpg", ".png", ".webp"):
        out = tmp_path / f"back{ext}"
        r = CliRunner().invoke(main, ["decompress", str(packed), str(out)])
        assert r.exit_code == 0, r.output
        im = Image.open(out)
        assert im.size == (40, 56), ext              # upright: the orientation was applied
        exif = im.getexif()
        assert (exif[0x010F], exif[0x0110], exif[0x0132]) == \
            ("Pear", "pPhone 17", "2026:12:01 07:15:00"), ext
        assert exif[0x0112] == 1, ext                # reset once applied: not turned twice
        assert exif.get_ifd(IFD.Exif)[0x9003] == "2026:12:01 07:15:00", ext
        gps = exif.get_ifd(IFD.GPSInfo)
        assert (gps[1], gps[3]) == ("N", "E") and tuple(map(float, gps[2])) == \
            (59.0, 54.0, 41.25), ext
        xmp = _xmp(im)
        assert b"<dc:title>Harbour at dawn</dc:title>" in xmp, ext
        assert b"tiff:Orientation" not in xmp, ext    # applied, so dropped from the XMP too
        assert im.info["icc_profile"] == SRGB, ext
        # shown upright by a viewer that applies the orientation: nothing left to turn
        from PIL import ImageOps
        assert ImageOps.exif_transpose(im).size == (40, 56)


def test_strip_leaves_the_metadata_out(phone, tmp_path):
    jpg, kept = phone
    stripped = tmp_path / "s.nnc"
    r = CliRunner().invoke(main, ["compress", "--refine", "0", "--strip", str(jpg),
                                  str(stripped)])
    assert r.exit_code == 0, r.output
    assert TAGS(stripped.read_bytes()) == ["HEAD", "Z2SA", "Z2IX", "Z1SA", "Z1IX", "iCCP",
                                           "END "]
    # the same pixel coding, without the two sections
    assert nnc.decompress(stripped).tobytes() == nnc.decompress(kept).tobytes()
    for ext in (".jpg", ".png", ".webp"):
        out = tmp_path / f"s{ext}"
        assert CliRunner().invoke(main, ["decompress", str(stripped), str(out)]).exit_code == 0
        im = Image.open(out)
        assert im.size == (40, 56) and not dict(im.getexif()) and _xmp(im) is None, ext
        assert im.info["icc_profile"] == SRGB, ext   # the colours still depend on it


def test_files_without_metadata_are_unchanged():
    """An image without EXIF or XMP gets no new section: the same bytes as before."""
    data = nnc.compress(smooth_image(24, 32), quality=0.3, refine=0)
    assert TAGS(data) == ["HEAD", "Z2SA", "Z2IX", "Z1SA", "Z1IX", "END "]
    im = nnc.decompress(data)
    assert "exif" not in im.info and "xmp" not in im.info


def test_metadata_travels_through_the_api_and_the_pillow_plugin(phone, tmp_path):
    jpg, packed = phone
    im = nnc.decompress(packed)
    assert im.getexif()[0x0110] == "pPhone 17" and im.info["xmp"].startswith(b"<x:xmpmeta")
    opened = Image.open(packed)
    opened.load()
    assert opened.getexif()[0x010F] == "Pear" and b"Harbour" in opened.info["xmp"]
    # a PIL image's own metadata is kept by nnc.compress and Image.save(".nnc")
    again = nnc.compress(Image.open(jpg), quality=0.3, refine=0)
    assert TAGS(again)[-3:] == ["eXIf", "xMPd", "END "]
    assert nnc.decompress(again).size == (40, 56)


def test_png_and_webp_inputs_give_their_metadata_too(tmp_path):
    exif = Image.Exif()
    exif[0x010F] = "Scanner Inc."
    XMP = PHONE_XMP.replace(b' tiff:Orientation="6"', b"")   # an upright one
    arr = smooth_image(24, 32)
    for fmt in ("PNG", "WEBP"):
        buf = io.BytesIO()
        opts = {"lossless": True} if fmt == "WEBP" else {}
        Image.fromarray(arr).save(buf, format=fmt, exif=exif, **opts,
                                  **({"xmp": XMP} if fmt == "WEBP" else {}))
        out = nnc.decompress(nnc.compress(buf.getvalue(), quality=0.3, refine=0))
        assert out.getexif()[0x010F] == "Scanner Inc.", fmt
        assert (out.info.get("xmp") == XMP) == (fmt == "WEBP"), fmt


def test_readers_that_do_not_know_the_sections_skip_them(phone, monkeypatch):
    data = phone[1].read_bytes()
    want = np.asarray(nnc.decompress(data))
    monkeypatch.setattr(container, "KNOWN_SECTIONS", tuple(
        t for t in container.KNOWN_SECTIONS if t not in ("eXIf", "xMPd")))
    old = nnc.decompress(data)      # ancillary: skipped, the pixels unchanged
    assert "exif" not in old.info and "xmp" not in old.info
    assert np.array_equal(np.asarray(old), want)


def _with(data: bytes, extra: list) -> bytes:
    sections = [(t.encode(), p) for t, p, *_ in container.iter_sections(data)
                if t not in ("eXIf", "xMPd", "END ")]
    return container.frame(sections + extra + [(b"END ", b"")])


def test_bad_metadata_sections_are_refused():
    """Spec §9, 24: not one whole zlib stream, past 16 MiB, EXIF without a byte-order mark,
    out of order; and the reference decoder refuses the same."""
    from pathlib import Path
    import reference_decoder as ref
    weights = Path(nnc.__file__).resolve().parents[1] / "weights"
    data = nnc.compress(smooth_image(24, 24), quality=0.3, refine=0)
    exif = b"II*\0" + bytes(8)
    good = _with(data, [(b"eXIf", zlib.compress(exif)), (b"xMPd", zlib.compress(PHONE_XMP))])
    assert nnc.decompress(good).info["exif"] == b"Exif\0\0" + exif
    ref.decode(good, weights)
    bomb = zlib.compress(b"\0" * ((16 << 20) + 1), 9)
    whole = zlib.compress(exif)
    for bad in ([(b"eXIf", b"not zlib")], [(b"xMPd", bomb)], [(b"eXIf", whole[:-3])],
                [(b"xMPd", zlib.compress(b""))], [(b"xMPd", whole + b"x")],
                [(b"eXIf", zlib.compress(b"Exif\0\0" + exif))],       # JPEG's prefix kept
                [(b"xMPd", whole), (b"eXIf", whole)]):                 # out of order
        damaged = _with(data, bad)
        with pytest.raises(FormatError):
            nnc.decompress(damaged)
        with pytest.raises(ref.Refused):
            ref.decode(damaged, weights)


def test_metadata_a_format_cannot_carry_is_left_out_with_a_warning():
    """EXIF or XMP over one JPEG APP1 segment, and XMP over the 1 MiB a PNG's text chunk is
    read back to by stock Pillow: the image is written without it, and a warning says so (as
    for colour profiles, spec §6b); the outputs reopen. Within the limits, both are kept."""
    from nnc.image_io import RasterImage, encode_for
    exif = Image.Exif()
    exif[0x010E] = "x" * 70_000                        # ImageDescription: over 64 KiB
    big_exif = exif.tobytes()[6:]                      # without the "Exif\0\0" prefix
    big = RasterImage(smooth_image(8, 8), False, None, exif=big_exif, xmp=b" " * 70_000)
    said = []
    back = Image.open(io.BytesIO(encode_for(big, "x.jpg", said.append)))
    back.load()
    assert not back.getexif() and _xmp(back) is None
    assert len(said) == 2 and all("JPEG" in m and "without it" in m for m in said)
    assert "EXIF" in said[0] and "XMP" in said[1]
    said.clear()       # the same EXIF fits a PNG (an eXIf chunk) and a WebP
    for ext in (".png", ".webp"):
        back = Image.open(io.BytesIO(encode_for(big, "x" + ext, said.append)))
        assert back.getexif()[0x010E] == "x" * 70_000 and said == [], ext
    xmp = PHONE_XMP + b" " * ((1 << 20) - len(PHONE_XMP))
    for packet, kept in ((xmp, True), (xmp + b" ", False)):
        img = RasterImage(smooth_image(8, 8), False, None, xmp=packet)
        said.clear()
        back = Image.open(io.BytesIO(encode_for(img, "x.png", said.append)))
        back.load()                                    # stock Pillow reopens it
        assert (_xmp(back) == packet) if kept else (_xmp(back) is None and "PNG" in said[0])
