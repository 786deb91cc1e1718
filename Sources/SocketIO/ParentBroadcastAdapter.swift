import NIOConcurrencyHelpers
import NIOCore
import SocketIOCore

/// The adapter of a dynamic namespace's parent (Node's `ParentBroadcastAdapter`): it has no
/// sockets and no place in the cluster; what is asked of it is asked of every child namespace's
/// adapter, the packet renamed to each child.
final class ParentBroadcastAdapter: SocketIOAdapter {
    private let children: SocketIONamespace.Handlers

    init(children: SocketIONamespace.Handlers) {
        self.children = children
    }

    private var namespaces: [SocketIONamespace] { self.children.children.withLockedValue { $0 } }

    func add(_ socket: SocketIOSocket) {}
    func remove(_ socket: SocketIOSocket) {}
    func join(_ socketID: String, rooms: Set<String>) {}
    func leave(_ socketID: String, room: String) {}
    func rooms(of socketID: String) -> Set<String> { [] }

    func broadcast(_ packet: SocketIOPacket, options: BroadcastOptions) {
        for namespace in self.namespaces {
            var packet = packet
            packet.namespace = namespace.name
            namespace.adapter.broadcast(packet, options: options)
        }
    }

    /// Not carried to the children (as in Node): nothing is sent, and the result is empty.
    func broadcastWithAck(
        _ packet: SocketIOPacket,
        options: BroadcastOptions,
        timeout: TimeAmount,
        callbacks: BroadcastAckCallbacks
    ) {
        callbacks.clientCount(0, [])
    }

    func fetchSockets(_ options: BroadcastOptions) async -> [SocketIORemoteSocket] {
        var sockets: [SocketIORemoteSocket] = []
        for namespace in self.namespaces { sockets += await namespace.adapter.fetchSockets(options) }
        return sockets
    }

    func addSockets(_ options: BroadcastOptions, rooms: Set<String>) {
        for namespace in self.namespaces { namespace.adapter.addSockets(options, rooms: rooms) }
    }

    func delSockets(_ options: BroadcastOptions, rooms: Set<String>) {
        for namespace in self.namespaces { namespace.adapter.delSockets(options, rooms: rooms) }
    }

    func disconnectSockets(_ options: BroadcastOptions, close: Bool) {
        for namespace in self.namespaces { namespace.adapter.disconnectSockets(options, close: close) }
    }

    func allRooms() async -> Set<String> {
        var rooms = Set<String>()
        for namespace in self.namespaces { rooms.formUnion(await namespace.adapter.allRooms()) }
        return rooms
    }
}
