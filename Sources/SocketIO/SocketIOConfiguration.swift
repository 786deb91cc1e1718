public import EngineIO
public import NIOCore

/// Options of a Socket.IO server. Defaults equal the Node.js reference server (socket.io 4.8)
/// unless the comment says why not.
public struct SocketIOConfiguration: Sendable {
    /// The Engine.IO options underneath (path `/socket.io/`, ping 25 s / 20 s, maxPayload 1 MB, …).
    public var engine = EngineIOConfiguration()
    /// Time a new connection has to connect to a namespace before it is closed. Default 45 s.
    public var connectTimeout: TimeAmount = .seconds(45)
    /// The timeout of `emitWithAck` calls that give none. Default 30 s. Node has no default (an
    /// ack without a timeout waits forever); a bounded default means a forgotten timeout can
    /// neither hang a task nor fail it at once.
    public var defaultAckTimeout: TimeAmount = .seconds(30)
    /// The most binary attachments one packet may announce; more is a protocol error. Default 64.
    public var maxAttachments: Int = 64
    /// The most bytes the binary attachments of one packet may add up to while it is being
    /// reassembled; the attachment that would exceed it is a protocol error that closes the
    /// connection (nothing is kept). Default 10 MB: ten attachments of the default `maxPayload`,
    /// the most the Node server's parser (socket.io-parser 4.2.6: ten attachments, each a message
    /// of at most `maxHttpBufferSize`) lets a packet hold. Node itself has no byte budget.
    public var maxAttachmentBytes: Int = 10_000_000
    /// How long a packet's attachments may take to arrive, from its text: a packet still waiting
    /// then closes the connection (parse error) and what it received is dropped. Default 30 s:
    /// clients send a packet's attachments right behind it, so only a stalled client waits
    /// longer. Node has no such limit (a client could hold a partial packet for ever).
    public var attachmentTimeout: TimeAmount = .seconds(30)
    /// The most acks a socket may wait for at once; `emitWithAck` beyond it throws. Default 1 024.
    public var maxPendingAcks: Int = 1024
    /// Slow consumers: the most packets (text and attachments) and bytes that may wait for one
    /// client (a long-poll not collecting, or a WebSocket the client does not read). Volatile
    /// packets are dropped as soon as anything waits; past either bound the connection closes and
    /// its sockets disconnect with reason `transport buffer full`. Defaults 10 000 packets and
    /// 16 MiB: far above what a reading client accumulates, small enough that 1 000 stalled
    /// clients cannot exhaust memory.
    public var maxQueuedPackets: Int = 10_000
    /// See ``maxQueuedPackets``.
    public var maxQueuedBytes: Int = 16 << 20
    /// Makes the adapter of each namespace (a dynamic namespace's children each get their own),
    /// given what it needs to know of the namespace. Default: ``InMemoryAdapter``.
    public var adapterFactory: @Sendable (SocketIOAdapterContext) -> any SocketIOAdapter = { _ in InMemoryAdapter() }

    /// Creates a configuration with the defaults.
    public init() {
        self.engine.path = "/socket.io/"
    }
}
