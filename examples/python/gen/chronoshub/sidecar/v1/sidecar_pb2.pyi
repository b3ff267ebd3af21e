from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DELIVERY_STATE_ACKED: DeliveryState
DELIVERY_STATE_DEAD_LETTERED: DeliveryState
DELIVERY_STATE_DELIVERED: DeliveryState
DELIVERY_STATE_NOT_SUBSCRIBED: DeliveryState
DELIVERY_STATE_PENDING: DeliveryState
DELIVERY_STATE_UNSPECIFIED: DeliveryState
DESCRIPTOR: _descriptor.FileDescriptor
SENT_EVENT_STATE_ACCEPTED: SentEventState
SENT_EVENT_STATE_FAILED: SentEventState
SENT_EVENT_STATE_QUEUED: SentEventState
SENT_EVENT_STATE_UNSPECIFIED: SentEventState
START_POSITION_NOW: StartPosition
START_POSITION_OLDEST: StartPosition
START_POSITION_TIME: StartPosition
START_POSITION_UNSPECIFIED: StartPosition

class AckEventsRequest(_message.Message):
    __slots__ = ["event_ids", "redeliver_delay", "reject", "subscription"]
    EVENT_IDS_FIELD_NUMBER: _ClassVar[int]
    REDELIVER_DELAY_FIELD_NUMBER: _ClassVar[int]
    REJECT_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIPTION_FIELD_NUMBER: _ClassVar[int]
    event_ids: _containers.RepeatedScalarFieldContainer[str]
    redeliver_delay: _duration_pb2.Duration
    reject: bool
    subscription: str
    def __init__(self, subscription: _Optional[str] = ..., event_ids: _Optional[_Iterable[str]] = ..., reject: bool = ..., redeliver_delay: _Optional[_Union[_duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class AckEventsResponse(_message.Message):
    __slots__ = ["event_ids", "unknown_event_ids"]
    EVENT_IDS_FIELD_NUMBER: _ClassVar[int]
    UNKNOWN_EVENT_IDS_FIELD_NUMBER: _ClassVar[int]
    event_ids: _containers.RepeatedScalarFieldContainer[str]
    unknown_event_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, event_ids: _Optional[_Iterable[str]] = ..., unknown_event_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class DeadLetter(_message.Message):
    __slots__ = ["dead_at", "detail", "event", "reason"]
    DEAD_AT_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    dead_at: _timestamp_pb2.Timestamp
    detail: str
    event: Event
    reason: str
    def __init__(self, event: _Optional[_Union[Event, _Mapping]] = ..., dead_at: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., reason: _Optional[str] = ..., detail: _Optional[str] = ...) -> None: ...

class DeleteSubscriptionRequest(_message.Message):
    __slots__ = ["subscription"]
    SUBSCRIPTION_FIELD_NUMBER: _ClassVar[int]
    subscription: str
    def __init__(self, subscription: _Optional[str] = ...) -> None: ...

class DeleteSubscriptionResponse(_message.Message):
    __slots__ = []
    def __init__(self) -> None: ...

class Event(_message.Message):
    __slots__ = ["attempt", "id", "payload", "received_at", "replay", "sequence", "signed_at", "traceparent", "tracestate", "type"]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_AT_FIELD_NUMBER: _ClassVar[int]
    REPLAY_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    SIGNED_AT_FIELD_NUMBER: _ClassVar[int]
    TRACEPARENT_FIELD_NUMBER: _ClassVar[int]
    TRACESTATE_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    attempt: int
    id: str
    payload: bytes
    received_at: _timestamp_pb2.Timestamp
    replay: bool
    sequence: int
    signed_at: _timestamp_pb2.Timestamp
    traceparent: str
    tracestate: str
    type: str
    def __init__(self, id: _Optional[str] = ..., type: _Optional[str] = ..., payload: _Optional[bytes] = ..., signed_at: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., received_at: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., attempt: _Optional[int] = ..., sequence: _Optional[int] = ..., traceparent: _Optional[str] = ..., tracestate: _Optional[str] = ..., replay: bool = ...) -> None: ...

class EventDelivery(_message.Message):
    __slots__ = ["attempts", "dead_at", "dead_letter_reason", "state", "subscription"]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    DEAD_AT_FIELD_NUMBER: _ClassVar[int]
    DEAD_LETTER_REASON_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIPTION_FIELD_NUMBER: _ClassVar[int]
    attempts: int
    dead_at: _timestamp_pb2.Timestamp
    dead_letter_reason: str
    state: DeliveryState
    subscription: str
    def __init__(self, subscription: _Optional[str] = ..., state: _Optional[_Union[DeliveryState, str]] = ..., attempts: _Optional[int] = ..., dead_letter_reason: _Optional[str] = ..., dead_at: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetEventRequest(_message.Message):
    __slots__ = ["event_id", "sequence"]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    sequence: int
    def __init__(self, event_id: _Optional[str] = ..., sequence: _Optional[int] = ...) -> None: ...

class GetEventResponse(_message.Message):
    __slots__ = ["deliveries", "event"]
    DELIVERIES_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    deliveries: _containers.RepeatedCompositeFieldContainer[EventDelivery]
    event: Event
    def __init__(self, event: _Optional[_Union[Event, _Mapping]] = ..., deliveries: _Optional[_Iterable[_Union[EventDelivery, _Mapping]]] = ...) -> None: ...

class GetSentEventRequest(_message.Message):
    __slots__ = ["idempotency_key"]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    idempotency_key: str
    def __init__(self, idempotency_key: _Optional[str] = ...) -> None: ...

class GetSentEventResponse(_message.Message):
    __slots__ = ["sent_event"]
    SENT_EVENT_FIELD_NUMBER: _ClassVar[int]
    sent_event: SentEvent
    def __init__(self, sent_event: _Optional[_Union[SentEvent, _Mapping]] = ...) -> None: ...

class GetSubscriptionRequest(_message.Message):
    __slots__ = ["subscription"]
    SUBSCRIPTION_FIELD_NUMBER: _ClassVar[int]
    subscription: str
    def __init__(self, subscription: _Optional[str] = ...) -> None: ...

class GetSubscriptionResponse(_message.Message):
    __slots__ = ["subscription"]
    SUBSCRIPTION_FIELD_NUMBER: _ClassVar[int]
    subscription: Subscription
    def __init__(self, subscription: _Optional[_Union[Subscription, _Mapping]] = ...) -> None: ...

class ListDeadLettersRequest(_message.Message):
    __slots__ = ["page_size", "page_token", "subscription"]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIPTION_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    subscription: str
    def __init__(self, subscription: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListDeadLettersResponse(_message.Message):
    __slots__ = ["dead_letters", "next_page_token"]
    DEAD_LETTERS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    dead_letters: _containers.RepeatedCompositeFieldContainer[DeadLetter]
    next_page_token: str
    def __init__(self, dead_letters: _Optional[_Iterable[_Union[DeadLetter, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ListRecentWebhooksRequest(_message.Message):
    __slots__ = []
    def __init__(self) -> None: ...

class ListRecentWebhooksResponse(_message.Message):
    __slots__ = ["webhooks"]
    WEBHOOKS_FIELD_NUMBER: _ClassVar[int]
    webhooks: _containers.RepeatedCompositeFieldContainer[RecentWebhook]
    def __init__(self, webhooks: _Optional[_Iterable[_Union[RecentWebhook, _Mapping]]] = ...) -> None: ...

class ListSentEventsRequest(_message.Message):
    __slots__ = ["page_size"]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    def __init__(self, page_size: _Optional[int] = ...) -> None: ...

class ListSentEventsResponse(_message.Message):
    __slots__ = ["sent_events"]
    SENT_EVENTS_FIELD_NUMBER: _ClassVar[int]
    sent_events: _containers.RepeatedCompositeFieldContainer[SentEvent]
    def __init__(self, sent_events: _Optional[_Iterable[_Union[SentEvent, _Mapping]]] = ...) -> None: ...

class ListSubscriptionsRequest(_message.Message):
    __slots__ = []
    def __init__(self) -> None: ...

class ListSubscriptionsResponse(_message.Message):
    __slots__ = ["subscriptions"]
    SUBSCRIPTIONS_FIELD_NUMBER: _ClassVar[int]
    subscriptions: _containers.RepeatedCompositeFieldContainer[Subscription]
    def __init__(self, subscriptions: _Optional[_Iterable[_Union[Subscription, _Mapping]]] = ...) -> None: ...

class PushState(_message.Message):
    __slots__ = ["in_flight", "last_error", "last_status", "paused", "url"]
    IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    LAST_STATUS_FIELD_NUMBER: _ClassVar[int]
    PAUSED_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    in_flight: int
    last_error: str
    last_status: int
    paused: bool
    url: str
    def __init__(self, url: _Optional[str] = ..., paused: bool = ..., in_flight: _Optional[int] = ..., last_status: _Optional[int] = ..., last_error: _Optional[str] = ...) -> None: ...

class RecentWebhook(_message.Message):
    __slots__ = ["event_id", "event_type", "http_status", "outcome", "reason", "received_at"]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    HTTP_STATUS_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_AT_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    event_type: str
    http_status: int
    outcome: str
    reason: str
    received_at: _timestamp_pb2.Timestamp
    def __init__(self, received_at: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., event_id: _Optional[str] = ..., event_type: _Optional[str] = ..., outcome: _Optional[str] = ..., reason: _Optional[str] = ..., http_status: _Optional[int] = ...) -> None: ...

class ReplayDeadLettersRequest(_message.Message):
    __slots__ = ["all", "event_ids", "subscription"]
    ALL_FIELD_NUMBER: _ClassVar[int]
    EVENT_IDS_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIPTION_FIELD_NUMBER: _ClassVar[int]
    all: bool
    event_ids: _containers.RepeatedScalarFieldContainer[str]
    subscription: str
    def __init__(self, subscription: _Optional[str] = ..., event_ids: _Optional[_Iterable[str]] = ..., all: bool = ...) -> None: ...

class ReplayDeadLettersResponse(_message.Message):
    __slots__ = ["event_ids", "unknown_event_ids"]
    EVENT_IDS_FIELD_NUMBER: _ClassVar[int]
    UNKNOWN_EVENT_IDS_FIELD_NUMBER: _ClassVar[int]
    event_ids: _containers.RepeatedScalarFieldContainer[str]
    unknown_event_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, event_ids: _Optional[_Iterable[str]] = ..., unknown_event_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class ReplayEventsRequest(_message.Message):
    __slots__ = ["end_time", "event_ids", "event_types", "page_size", "page_token", "start_time", "subscription"]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    EVENT_IDS_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPES_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIPTION_FIELD_NUMBER: _ClassVar[int]
    end_time: _timestamp_pb2.Timestamp
    event_ids: _containers.RepeatedScalarFieldContainer[str]
    event_types: _containers.RepeatedScalarFieldContainer[str]
    page_size: int
    page_token: str
    start_time: _timestamp_pb2.Timestamp
    subscription: str
    def __init__(self, subscription: _Optional[str] = ..., event_ids: _Optional[_Iterable[str]] = ..., start_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., event_types: _Optional[_Iterable[str]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ReplayEventsResponse(_message.Message):
    __slots__ = ["event_ids", "next_page_token", "oldest_retained_time", "start_expired", "unknown_event_ids"]
    EVENT_IDS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    OLDEST_RETAINED_TIME_FIELD_NUMBER: _ClassVar[int]
    START_EXPIRED_FIELD_NUMBER: _ClassVar[int]
    UNKNOWN_EVENT_IDS_FIELD_NUMBER: _ClassVar[int]
    event_ids: _containers.RepeatedScalarFieldContainer[str]
    next_page_token: str
    oldest_retained_time: _timestamp_pb2.Timestamp
    start_expired: bool
    unknown_event_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, event_ids: _Optional[_Iterable[str]] = ..., unknown_event_ids: _Optional[_Iterable[str]] = ..., next_page_token: _Optional[str] = ..., start_expired: bool = ..., oldest_retained_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class SendEventRequest(_message.Message):
    __slots__ = ["idempotency_key", "payload", "type"]
    ASYNC_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    idempotency_key: str
    payload: bytes
    type: str
    def __init__(self, type: _Optional[str] = ..., payload: _Optional[bytes] = ..., idempotency_key: _Optional[str] = ..., **kwargs) -> None: ...

class SendEventResponse(_message.Message):
    __slots__ = ["event_id", "idempotency_key", "state"]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    idempotency_key: str
    state: SentEventState
    def __init__(self, event_id: _Optional[str] = ..., state: _Optional[_Union[SentEventState, str]] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class SentEvent(_message.Message):
    __slots__ = ["attempts", "created_at", "error", "event_id", "idempotency_key", "state", "type", "updated_at"]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    attempts: int
    created_at: _timestamp_pb2.Timestamp
    error: str
    event_id: str
    idempotency_key: str
    state: SentEventState
    type: str
    updated_at: _timestamp_pb2.Timestamp
    def __init__(self, idempotency_key: _Optional[str] = ..., type: _Optional[str] = ..., state: _Optional[_Union[SentEventState, str]] = ..., event_id: _Optional[str] = ..., attempts: _Optional[int] = ..., error: _Optional[str] = ..., created_at: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class StreamEventsRequest(_message.Message):
    __slots__ = ["event_types", "max_events", "max_in_flight", "start_position", "start_time", "subscription"]
    EVENT_TYPES_FIELD_NUMBER: _ClassVar[int]
    MAX_EVENTS_FIELD_NUMBER: _ClassVar[int]
    MAX_IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    START_POSITION_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIPTION_FIELD_NUMBER: _ClassVar[int]
    event_types: _containers.RepeatedScalarFieldContainer[str]
    max_events: int
    max_in_flight: int
    start_position: StartPosition
    start_time: _timestamp_pb2.Timestamp
    subscription: str
    def __init__(self, subscription: _Optional[str] = ..., event_types: _Optional[_Iterable[str]] = ..., start_position: _Optional[_Union[StartPosition, str]] = ..., start_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., max_in_flight: _Optional[int] = ..., max_events: _Optional[int] = ...) -> None: ...

class StreamEventsResponse(_message.Message):
    __slots__ = ["event"]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    event: Event
    def __init__(self, event: _Optional[_Union[Event, _Mapping]] = ...) -> None: ...

class Subscription(_message.Message):
    __slots__ = ["acked_sequence", "create_time", "dead_letter_count", "event_types", "name", "oldest_unacked_time", "open_streams", "pending_count", "push", "unacked_count"]
    ACKED_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    DEAD_LETTER_COUNT_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPES_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    OLDEST_UNACKED_TIME_FIELD_NUMBER: _ClassVar[int]
    OPEN_STREAMS_FIELD_NUMBER: _ClassVar[int]
    PENDING_COUNT_FIELD_NUMBER: _ClassVar[int]
    PUSH_FIELD_NUMBER: _ClassVar[int]
    UNACKED_COUNT_FIELD_NUMBER: _ClassVar[int]
    acked_sequence: int
    create_time: _timestamp_pb2.Timestamp
    dead_letter_count: int
    event_types: _containers.RepeatedScalarFieldContainer[str]
    name: str
    oldest_unacked_time: _timestamp_pb2.Timestamp
    open_streams: int
    pending_count: int
    push: PushState
    unacked_count: int
    def __init__(self, name: _Optional[str] = ..., event_types: _Optional[_Iterable[str]] = ..., acked_sequence: _Optional[int] = ..., pending_count: _Optional[int] = ..., unacked_count: _Optional[int] = ..., open_streams: _Optional[int] = ..., dead_letter_count: _Optional[int] = ..., oldest_unacked_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., create_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., push: _Optional[_Union[PushState, _Mapping]] = ...) -> None: ...

class UpdateSubscriptionRequest(_message.Message):
    __slots__ = ["event_types", "subscription"]
    EVENT_TYPES_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIPTION_FIELD_NUMBER: _ClassVar[int]
    event_types: _containers.RepeatedScalarFieldContainer[str]
    subscription: str
    def __init__(self, subscription: _Optional[str] = ..., event_types: _Optional[_Iterable[str]] = ...) -> None: ...

class UpdateSubscriptionResponse(_message.Message):
    __slots__ = ["dead_lettered_count", "subscription"]
    DEAD_LETTERED_COUNT_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIPTION_FIELD_NUMBER: _ClassVar[int]
    dead_lettered_count: int
    subscription: Subscription
    def __init__(self, subscription: _Optional[_Union[Subscription, _Mapping]] = ..., dead_lettered_count: _Optional[int] = ...) -> None: ...

class StartPosition(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []

class SentEventState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []

class DeliveryState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []
