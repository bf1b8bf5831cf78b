"""Narrow-band speech codecs of phone networks that PyAV's FFmpeg cannot encode, through
the system's own libraries (ctypes): GSM 06.10 (libgsm) and Speex narrow band
(libspeex), installed with Debian's `ffmpeg` or by `apt-get install libgsm1 libspeex1`.
Training degrades music with them as a phone call would; they are train-role codecs
(`simlib.train.augment.CODEC_ROLES`).

Each round trip takes 16-bit samples at 8 kHz and returns as many, aligned with the input.
"""

from __future__ import annotations

import ctypes
import functools

import numpy as np

GSM_FRAME, GSM_BYTES = 160, 33
"""GSM 06.10 codes 160 samples (20 ms) into 33 bytes (13.2 kbit/s)."""
SPEEX_NB_MODE, SPEEX_SET_QUALITY, SPEEX_GET_FRAME_SIZE = 0, 4, 3
"""libspeex's constants (speex.h): the narrow-band mode and two encoder requests."""
SPEEX_DELAY = 80
"""Samples the Speex narrow-band decoder's output lags its input (measured: 10 ms)."""
SPEEX_QUALITY_KBPS = {2: 5.95, 3: 8.0, 4: 8.0, 5: 11.0, 6: 11.0, 7: 15.0, 8: 15.0}
"""Speex narrow-band quality -> kbit/s (speex.h's table); `speex_roundtrip` takes kbit/s."""
SPEEX_BITS_BYTES, SPEEX_PACKET_BYTES = 128, 256
"""Room for libspeex's SpeexBits struct (about 48 bytes) and for one coded frame."""


class CodecUnavailable(RuntimeError):
    """The system library of a speech codec is not installed."""


def _load(name: str) -> ctypes.CDLL:
    try:
        return ctypes.CDLL(name)
    except OSError as error:
        message = f"{name} is missing: `apt-get install libgsm1 libspeex1` installs it"
        raise CodecUnavailable(message) from error


@functools.cache
def _gsm() -> ctypes.CDLL:
    lib = _load("libgsm.so.1")
    lib.gsm_create.restype = ctypes.c_void_p
    for name in ("gsm_encode", "gsm_decode"):
        getattr(lib, name).argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
    lib.gsm_destroy.argtypes = [ctypes.c_void_p]
    return lib


@functools.cache
def _speex() -> ctypes.CDLL:
    lib = _load("libspeex.so.1")
    pointer, three = ctypes.c_void_p, [ctypes.c_void_p] * 3
    lib.speex_lib_get_mode.restype = pointer
    for name in ("speex_encoder_init", "speex_decoder_init"):
        getattr(lib, name).restype, getattr(lib, name).argtypes = pointer, [pointer]
    lib.speex_encoder_ctl.argtypes = [pointer, ctypes.c_int, pointer]
    lib.speex_encode_int.argtypes = lib.speex_decode_int.argtypes = three
    for name in ("speex_encoder_destroy", "speex_decoder_destroy"):
        getattr(lib, name).argtypes = [pointer]
    for name in ("speex_bits_init", "speex_bits_reset", "speex_bits_destroy"):
        getattr(lib, name).argtypes = [pointer]
    lib.speex_bits_write.argtypes = lib.speex_bits_read_from.argtypes = [
        pointer,
        pointer,
        ctypes.c_int,
    ]
    return lib


def _framed(samples: np.ndarray, frame: int) -> np.ndarray:
    """`samples` as contiguous int16, padded with zeros to whole frames."""
    x = np.ascontiguousarray(samples, np.int16)
    return np.concatenate([x, np.zeros(-len(x) % frame, np.int16)])


def gsm_roundtrip(samples: np.ndarray) -> np.ndarray:
    """GSM 06.10 full rate (13.2 kbit/s) encode and decode of 8 kHz int16 samples."""
    lib = _gsm()
    x = _framed(samples, GSM_FRAME)
    out, packet = np.zeros_like(x), ctypes.create_string_buffer(GSM_BYTES)
    encoder, decoder = lib.gsm_create(), lib.gsm_create()
    try:
        for i in range(0, len(x), GSM_FRAME):
            lib.gsm_encode(encoder, x[i:].ctypes.data, packet)
            lib.gsm_decode(decoder, packet, out[i:].ctypes.data)
    finally:
        lib.gsm_destroy(encoder)
        lib.gsm_destroy(decoder)
    return out[: len(samples)]


def speex_roundtrip(samples: np.ndarray, kbps: float) -> np.ndarray:
    """Speex narrow-band encode and decode of 8 kHz int16 samples at the quality of
    `kbps` (a value of SPEEX_QUALITY_KBPS), delay removed."""
    quality = next(q for q, rate in SPEEX_QUALITY_KBPS.items() if rate == kbps)
    lib = _speex()
    mode = lib.speex_lib_get_mode(SPEEX_NB_MODE)
    encoder, decoder = lib.speex_encoder_init(mode), lib.speex_decoder_init(mode)
    bits = ctypes.create_string_buffer(SPEEX_BITS_BYTES)
    lib.speex_bits_init(bits)
    try:
        value = ctypes.c_int(quality)
        lib.speex_encoder_ctl(encoder, SPEEX_SET_QUALITY, ctypes.byref(value))
        lib.speex_encoder_ctl(encoder, SPEEX_GET_FRAME_SIZE, ctypes.byref(value))
        frame = value.value
        x = _framed(np.concatenate([samples, np.zeros(SPEEX_DELAY, np.int16)]), frame)
        out, packet = np.zeros_like(x), ctypes.create_string_buffer(SPEEX_PACKET_BYTES)
        for i in range(0, len(x), frame):
            lib.speex_bits_reset(bits)
            lib.speex_encode_int(encoder, x[i:].ctypes.data, bits)
            size = lib.speex_bits_write(bits, packet, SPEEX_PACKET_BYTES)
            lib.speex_bits_read_from(bits, packet, size)
            lib.speex_decode_int(decoder, bits, out[i:].ctypes.data)
    finally:
        lib.speex_bits_destroy(bits)
        lib.speex_encoder_destroy(encoder)
        lib.speex_decoder_destroy(decoder)
    return out[SPEEX_DELAY : SPEEX_DELAY + len(samples)]
