import EngineIO
import NIOCore
import NIOWebSocket
import Testing

/// Frames cut out of received bytes, and masking eight bytes at a time, against NIO's own
/// encoding and masking.
@Suite struct WebSocketFrameParserTests {
    /// A client frame as NIO's encoder would put it on the wire (masked when `key` is given).
    private func wire(
        fin: Bool = true,
        rsv1: Bool = false,
        opcode: UInt8,
        key: UInt32?,
        payload: [UInt8]
    ) -> [UInt8] {
        var bytes: [UInt8] = [(fin ? 0x80 : 0) | (rsv1 ? 0x40 : 0) | opcode]
        let mask: UInt8 = key == nil ? 0 : 0x80
        if payload.count < 126 {
            bytes.append(mask | UInt8(payload.count))
        } else if payload.count <= 0xFFFF {
            bytes.append(mask | 126)
            bytes += [UInt8(payload.count >> 8), UInt8(payload.count & 0xFF)]
        } else {
            bytes.append(mask | 127)
            bytes += (0..<8).reversed().map { UInt8(truncatingIfNeeded: payload.count >> ($0 * 8)) }
        }
        guard let key else { return bytes + payload }
        let keyBytes = (0..<4).map { UInt8(truncatingIfNeeded: key >> (24 - $0 * 8)) }
        bytes += keyBytes
        return bytes + payload.enumerated().map { $0.element ^ keyBytes[$0.offset % 4] }
    }

    @Test func unmaskingAgreesWithNIOAtEveryLengthAndOffset() {
        var generator = SystemRandomNumberGenerator()
        for length in 0...70 {
            for offset in [0, 1, 3] {
                let key = UInt32.random(in: 0...UInt32.max, using: &generator)
                let bytes = (0..<(offset + length)).map { _ in UInt8.random(in: 0...255, using: &generator) }
                var ours = ByteBuffer(bytes: bytes)
                ours.moveReaderIndex(forwardBy: offset)
                var nio = ours
                WebSocketMasking.unmask(&ours, key: key)
                nio.webSocketMask(WebSocketMaskingKey((0..<4).map { UInt8(truncatingIfNeeded: key >> (24 - $0 * 8)) })!)
                #expect(Array(ours.readableBytesView) == Array(nio.readableBytesView), "length \(length)")
            }
        }
    }

    @Test func cutsEveryLengthEncodingMaskedOrNot() throws {
        for length in [0, 1, 125, 126, 127, 65_535, 65_536, 70_000] {
            for key: UInt32? in [nil, 0x0102_0304] {
                let payload = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 7) }
                var buffer = ByteBuffer(bytes: self.wire(opcode: 0x2, key: key, payload: payload))
                guard case .frame(let frame) = WebSocketFrameParser.cut(&buffer, maxFrameSize: 1 << 20) else {
                    Issue.record("no frame for length \(length)")
                    continue
                }
                #expect(frame.fin && !frame.rsv1 && frame.opcode == .binary && frame.maskKey == key)
                #expect(Array(frame.unmaskedData.readableBytesView) == payload, "length \(length)")
                #expect(buffer.readableBytes == 0)
            }
        }
    }

    /// Three frames arriving in pieces split at every position: each is cut exactly when its last
    /// byte is there, as the handler does (the remainder kept, the next read appended).
    @Test func framesSplitAtEveryPositionAreCutWhenComplete() {
        let frames = [
            self.wire(fin: false, opcode: 0x1, key: 0xA1B2_C3D4, payload: Array("4hello".utf8)),
            self.wire(opcode: 0x9, key: 0x0000_00FF, payload: Array("ping".utf8)),
            self.wire(rsv1: true, opcode: 0x0, key: 0xFFFF_FFFF, payload: Array(repeating: 0x61, count: 300)),
        ]
        let all = frames.flatMap { $0 }
        for split in 0...all.count {
            var cut: [WebSocketFrameParser.Frame] = []
            var pending = ByteBuffer()
            for piece in [all[..<split], all[split...]] {
                pending.writeBytes(piece)
                while case .frame(let frame) = WebSocketFrameParser.cut(&pending, maxFrameSize: 1000) {
                    cut.append(frame)
                }
                let whole = frames.reduce(into: [Int]()) { $0.append(($0.last ?? 0) + $1.count) }
                let expected = whole.filter { $0 <= (piece.endIndex == split ? split : all.count) }.count
                #expect(cut.count == expected, "split \(split)")
            }
            #expect(cut.map(\.opcode) == [.text, .ping, .continuation], "split \(split)")
            #expect(cut.map(\.fin) == [false, true, true])
            #expect(cut.map(\.rsv1) == [false, false, true])
            #expect(
                cut.map { String(decoding: $0.unmaskedData.readableBytesView, as: UTF8.self) }.prefix(2) == [
                    "4hello", "ping",
                ]
            )
            #expect(cut.last?.unmaskedData.readableBytes == 300)
        }
    }

    @Test func lengthsAboveTheLimitAreRefusedFromTheHeaderAlone() {
        // 16-bit and 64-bit lengths over the limit, and a 64-bit length with its top bit set: known
        // as soon as the header is in, before any payload.
        for header: [UInt8] in [
            [0x82, 0x80 | 126, 0x04, 0x01],
            [0x82, 0x80 | 127, 0, 0, 0, 0, 0, 0x01, 0, 0],
            [0x82, 0x80 | 127, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF],
        ] {
            var buffer = ByteBuffer(bytes: header)
            guard case .tooLarge = WebSocketFrameParser.cut(&buffer, maxFrameSize: 1024) else {
                Issue.record("\(header) not refused")
                continue
            }
        }
        var exact = ByteBuffer(bytes: self.wire(opcode: 0x2, key: 1, payload: Array(repeating: 0, count: 1024)))
        guard case .frame = WebSocketFrameParser.cut(&exact, maxFrameSize: 1024) else {
            Issue.record("a frame of exactly the limit was refused")
            return
        }
    }

    @Test func controlFramesMustBeWholeAndShort() {
        for bytes in [
            self.wire(fin: false, opcode: 0x9, key: 1, payload: []),
            self.wire(opcode: 0x8, key: 1, payload: Array(repeating: 0, count: 126)),
            self.wire(opcode: 0xA, key: 1, payload: Array(repeating: 0, count: 200)),
        ] {
            var buffer = ByteBuffer(bytes: bytes)
            guard case .malformedControl = WebSocketFrameParser.cut(&buffer, maxFrameSize: 1 << 20) else {
                Issue.record("\(bytes.prefix(4)) accepted")
                continue
            }
        }
        var ok = ByteBuffer(bytes: self.wire(opcode: 0x8, key: 1, payload: Array(repeating: 0, count: 125)))
        guard case .frame(let frame) = WebSocketFrameParser.cut(&ok, maxFrameSize: 1 << 20) else {
            Issue.record("a 125-byte close was refused")
            return
        }
        #expect(frame.opcode == .connectionClose && frame.data.readableBytes == 125)
    }

    @Test func incompleteHeadersAskForMore() {
        let whole = self.wire(opcode: 0x1, key: 0x1234_5678, payload: Array(repeating: 0x62, count: 70_000))
        for count in 0..<14 {
            var buffer = ByteBuffer(bytes: whole.prefix(count))
            guard case .needMore = WebSocketFrameParser.cut(&buffer, maxFrameSize: 1 << 20) else {
                Issue.record("\(count) bytes gave something")
                continue
            }
            #expect(buffer.readableBytes == count, "bytes were consumed")
        }
    }
}
