"""Audio checks with PyAV: FFmpeg must agree with libmagic, the audio must decode.

Duration is counted from decoded samples, not taken from the header: headers can
lie and a full decode is affordable (FFmpeg decodes MP3 at over 1000x real time on
one core: about 2.5 s for an hour), and it is what proves the file decodable.
Decoding stops as soon as the count passes the limit, so a long file costs at most
``max_audio_seconds`` worth of decoding; a header that already says "too long" is
believed when it is exact, so such files are turned away without decoding.

FFmpeg's own error text is kept in parentheses after a sentence that says what
went wrong, because on its own it rarely says anything useful
("Invalid data found when processing input").
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import av
from av.audio.stream import AudioStream
from av.container import InputContainer
from av.stream import Disposition

from glimpse.config import LimitsSettings
from glimpse.media.framing import mp3_has_length_header, mp4_truncated_at, ogg_truncated_at
from glimpse.media.reasons import Rejected, RejectReason
from glimpse.media.sniff import Claim

# canonical MIME -> FFmpeg demuxer name that must come out of probing the bytes
_DEMUXER: dict[str, str] = {
    "audio/wav": "wav",
    "audio/mpeg": "mp3",
    "audio/ogg": "ogg",
    "audio/flac": "flac",
    "audio/mp4": "mov,mp4,m4a,3gp,3g2,mj2",
    "audio/webm": "matroska,webm",
}
# A few bad packets in a long file are tolerated (FFmpeg and faster-whisper skip
# them, as libjpeg does for a damaged block); more than this is a broken file.
_MAX_BAD_PACKET_SHARE = 0.01
_MIN_BAD_PACKETS_TOLERATED = 3
# Decoders may drop a few ms of priming/padding, so "shorter than the header"
# only counts as truncation beyond this.
_SHORTFALL_S = 0.5
_SHORTFALL_SHARE = 0.02


@dataclass(frozen=True, slots=True)
class AudioFacts:
    mime: str
    duration_s: float
    metadata: dict[str, str]


@dataclass(slots=True)
class _Decoded:
    seconds: float = 0.0
    packets: int = 0
    bad_packets: int = 0
    last_packet_bad: bool = False


def inspect_audio(data: bytes, claim: Claim, limits: LimitsSettings) -> AudioFacts:
    if claim.mime == "audio/mp4" and (box := mp4_truncated_at(data)) is not None:
        # FFmpeg would only say "Invalid data found"; the box walk can say what happened.
        raise Rejected(
            RejectReason.UNDECODABLE,
            f"the {claim.label} data ends early (truncated at byte {len(data)}, "
            f"inside the '{box[1]}' box that starts at byte {box[0]})",
        )
    try:
        container = av.open(io.BytesIO(data), mode="r", metadata_errors="replace")
    except av.FFmpegError as exc:
        raise Rejected(
            RejectReason.UNDECODABLE,
            f"the file starts like {claim.label} audio, but the rest cannot be read: "
            f"it is damaged or not really {claim.label} ({_detail(exc)})",
        ) from exc
    with container:
        stream = _audio_stream(container, claim)
        exact_header = _header_duration_is_exact(data, claim)
        declared = _declared_seconds(container)
        if exact_header and declared is not None and declared > limits.max_audio_seconds:
            raise Rejected(RejectReason.TOO_LONG, _too_long(declared, limits.max_audio_seconds))
        decoded = _decode_all(container, stream, claim, limits.max_audio_seconds)
        _check_complete(data, claim, decoded, declared if exact_header else None)
        metadata = _metadata(claim, stream, decoded)
    return AudioFacts(claim.mime, decoded.seconds, metadata)


def _audio_stream(container: InputContainer, claim: Claim) -> AudioStream:
    demuxer = container.format.name
    if demuxer != _DEMUXER[claim.mime]:
        raise Rejected(
            RejectReason.MIME_MISMATCH,
            f"libmagic says {claim.detected}, but FFmpeg reads it as {demuxer}",
        )
    # Cover art in MP3/M4A shows up as a one-picture "video" stream; that is fine.
    videos = [s for s in container.streams.video if not s.disposition & Disposition.attached_pic]
    if videos:
        codec = videos[0].codec_context.name
        raise Rejected(
            RejectReason.UNSUPPORTED_TYPE,
            f"video is not supported: the {claim.label} file has a {codec} video track",
        )
    if not container.streams.audio:
        raise Rejected(RejectReason.UNDECODABLE, f"the {claim.label} file has no audio track")
    return container.streams.audio[0]


def _header_duration_is_exact(data: bytes, claim: Claim) -> bool:
    if claim.mime == "audio/mpeg":
        return mp3_has_length_header(data)
    # WebM from browsers' MediaRecorder, and streamed FLAC, carry no length; FFmpeg
    # then guesses from the bitrate without saying so, so don't lean on theirs.
    return claim.mime not in ("audio/webm", "audio/flac")


def _declared_seconds(container: InputContainer) -> float | None:
    if container.duration is None or container.duration <= 0:
        return None
    return container.duration / av.time_base


def _decode_all(
    container: InputContainer, stream: AudioStream, claim: Claim, max_seconds: float
) -> _Decoded:
    decoded = _Decoded()
    try:
        for packet in container.demux(stream):
            if packet.size == 0:  # the flush packet at the end
                _decode_packet(packet, decoded)
                continue
            decoded.packets += 1
            decoded_ok = _decode_packet(packet, decoded)
            # is_corrupt: the demuxer got fewer bytes than the packet should have
            decoded.last_packet_bad = packet.is_corrupt or not decoded_ok
            if decoded.last_packet_bad and decoded_ok:
                decoded.bad_packets += 1
            if decoded.seconds > max_seconds:
                raise Rejected(
                    RejectReason.TOO_LONG,
                    f"audio is longer than the limit of {_duration(max_seconds)} "
                    f"(stopped decoding at {_duration(decoded.seconds)})",
                )
    except av.FFmpegError as exc:  # the demuxer itself gave up
        raise Rejected(
            RejectReason.UNDECODABLE,
            f"the {claim.label} data is damaged at {decoded.seconds:.1f} s ({_detail(exc)})",
        ) from exc
    return decoded


def _decode_packet(packet: av.Packet[AudioStream], decoded: _Decoded) -> bool:
    """Decode one packet into the running count; False if the decoder rejected it."""
    try:
        frames = packet.decode()
    except av.FFmpegError:
        decoded.bad_packets += 1
        return False
    for frame in frames:
        if frame.sample_rate > 0:
            decoded.seconds += frame.samples / frame.sample_rate
    return True


def _check_complete(
    data: bytes, claim: Claim, decoded: _Decoded, exact_declared: float | None
) -> None:
    label = claim.label
    tolerated = max(_MIN_BAD_PACKETS_TOLERATED, int(decoded.packets * _MAX_BAD_PACKET_SHARE))
    if decoded.bad_packets > tolerated:
        raise Rejected(
            RejectReason.UNDECODABLE,
            f"the {label} data is damaged: {decoded.bad_packets} of {decoded.packets} "
            "packets could not be decoded",
        )
    if decoded.last_packet_bad:
        raise Rejected(
            RejectReason.UNDECODABLE,
            f"the {label} data ends early (the last frame is incomplete, "
            f"truncated at byte {len(data)})",
        )
    if claim.mime == "audio/ogg" and (page := ogg_truncated_at(data)) is not None:
        raise Rejected(
            RejectReason.UNDECODABLE,
            f"the Ogg data ends early (truncated at byte {len(data)}, "
            f"inside the page that starts at byte {page})",
        )
    if exact_declared is not None:
        shortfall = exact_declared - decoded.seconds
        if shortfall > max(_SHORTFALL_S, exact_declared * _SHORTFALL_SHARE):
            raise Rejected(
                RejectReason.UNDECODABLE,
                f"the {label} data ends early: its header says {exact_declared:.1f} s, "
                f"but only {decoded.seconds:.1f} s could be decoded",
            )
    if decoded.seconds <= 0:
        raise Rejected(RejectReason.UNDECODABLE, f"no audio could be decoded from the {label}")


def _metadata(claim: Claim, stream: AudioStream, decoded: _Decoded) -> dict[str, str]:
    context = stream.codec_context
    metadata = {
        "container": claim.label,
        "codec": context.codec.canonical_name,
        "sample_rate": str(context.sample_rate),
        "channels": str(context.channels),
    }
    if context.bit_rate:
        metadata["bit_rate"] = str(context.bit_rate)
    if decoded.bad_packets:
        metadata["damaged_packets"] = str(decoded.bad_packets)
    return metadata


def _too_long(seconds: float, limit: float) -> str:
    return f"audio is {_duration(seconds)} long, limit is {_duration(limit)}"


def _duration(seconds: float) -> str:
    """1.5 h / 12 min / 42.0 s: readable at any scale."""
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h".replace(".0 h", " h")
    if seconds >= 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:.1f} s"


def _detail(exc: av.FFmpegError) -> str:
    text = exc.strerror or str(exc)
    return f"FFmpeg: {text}"
