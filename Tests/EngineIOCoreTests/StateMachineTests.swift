import EngineIOCore
import NIOCore
import Testing

@Suite("Heartbeat state machine")
struct HeartbeatTests {
    let t0 = NIODeadline.uptimeNanoseconds(1_000_000_000)

    @Test func pingThenPongThenPing() {
        var m = EngineIOHeartbeatStateMachine(pingInterval: .milliseconds(300), pingTimeout: .milliseconds(200))
        let r1 = m.sessionOpened(now: t0)
        #expect(r1 == .schedulePing(at: t0 + .milliseconds(300)))
        let r2 = m.pingTimerFired(now: t0 + .milliseconds(300))
        #expect(r2 == .sendPing(timeoutAt: t0 + .milliseconds(500)))
        let r3 = m.pongReceived(now: t0 + .milliseconds(350))
        #expect(r3 == .schedulePing(at: t0 + .milliseconds(650)))
        // The old pong timer is stale now.
        let r4 = m.pongTimerFired(now: t0 + .milliseconds(500))
        #expect(r4 == .none)
        let r5 = m.pingTimerFired(now: t0 + .milliseconds(650))
        #expect(r5 == .sendPing(timeoutAt: t0 + .milliseconds(850)))
    }

    @Test func noPongClosesExactlyAtTheDeadline() {
        var m = EngineIOHeartbeatStateMachine(pingInterval: .milliseconds(300), pingTimeout: .milliseconds(200))
        _ = m.sessionOpened(now: t0)
        _ = m.pingTimerFired(now: t0 + .milliseconds(300))
        let r6 = m.pongTimerFired(now: t0 + .milliseconds(499))
        #expect(r6 == .none)
        let r7 = m.pongTimerFired(now: t0 + .milliseconds(500))
        #expect(r7 == .closeSession)
        let r8 = m.pongReceived(now: t0 + .milliseconds(501))
        #expect(r8 == .none)
    }

    @Test func earlyTimerReschedules() {
        var m = EngineIOHeartbeatStateMachine(pingInterval: .milliseconds(300), pingTimeout: .milliseconds(200))
        _ = m.sessionOpened(now: t0)
        let r9 = m.pingTimerFired(now: t0 + .milliseconds(100))
        #expect(r9 == .schedulePing(at: t0 + .milliseconds(300)))
    }

    @Test func unsolicitedPongAndStop() {
        var m = EngineIOHeartbeatStateMachine(pingInterval: .seconds(1), pingTimeout: .seconds(1))
        _ = m.sessionOpened(now: t0)
        let r10 = m.pongReceived(now: t0)
        #expect(r10 == .none)
        m.stop()
        let r11 = m.pingTimerFired(now: t0 + .seconds(5))
        #expect(r11 == .none)
    }
}

@Suite("Transport state machine")
struct TransportTests {
    @Test func pollingBuffersUntilAGetArrives() {
        var m = EngineIOTransportStateMachine(transport: .polling, maxBufferedPackets: 10)
        let r12 = m.packetQueued(.message("a"))
        #expect(r12 == .buffered)
        let r13 = m.packetQueued(.message("b"))
        #expect(r13 == .buffered)
        let r14 = m.pollRequestReceived()
        #expect(r14 == .answer([.message("a"), .message("b")]))
        let r15 = m.pollRequestReceived()
        #expect(r15 == .hold)
        let r16 = m.packetQueued(.ping(""))
        #expect(r16 == .answerPoll([.ping("")]))
        #expect(m.bufferedCount == 0)
    }

    @Test func secondGetIsAnOverlap() {
        var m = EngineIOTransportStateMachine(transport: .polling, maxBufferedPackets: 10)
        let r17 = m.pollRequestReceived()
        #expect(r17 == .hold)
        let r18 = m.pollRequestReceived()
        #expect(r18 == .overlap)
        let close = m.closeRequested(byClient: false)
        #expect(close?.answerPendingPoll == .close)
        let r19 = m.pollRequestReceived()
        #expect(r19 == .reject(.unknownSid))
    }

    @Test func clientCloseAnswersPendingGetWithNoop() {
        var m = EngineIOTransportStateMachine(transport: .polling, maxBufferedPackets: 10)
        _ = m.pollRequestReceived()
        let r20 = m.closeRequested(byClient: true)
        #expect(r20?.answerPendingPoll == .noop)
        let r21 = m.closeRequested(byClient: true)
        #expect(r21 == nil)
        let r22 = m.packetQueued(.message("late"))
        #expect(r22 == .dropped)
    }

    @Test func bufferLimitClosesTheSession() {
        var m = EngineIOTransportStateMachine(transport: .polling, maxBufferedPackets: 2)
        let r23 = m.packetQueued(.message("1"))
        #expect(r23 == .buffered)
        let r24 = m.packetQueued(.message("2"))
        #expect(r24 == .buffered)
        let r25 = m.packetQueued(.message("3"))
        #expect(r25 == .closeSession(.bufferFull))
    }

    @Test func droppedGetClosesOnlyWhenPending() {
        var m = EngineIOTransportStateMachine(transport: .polling, maxBufferedPackets: 10)
        let r26 = m.pollRequestAborted()
        #expect(r26 == nil)
        _ = m.pollRequestReceived()
        let r27 = m.pollRequestAborted()
        #expect(r27 == .transportError)
    }

    @Test func upgradeFlow() {
        var m = EngineIOTransportStateMachine(transport: .polling, maxBufferedPackets: 10)
        let r28 = m.pollRequestReceived()
        #expect(r28 == .hold)
        let r29 = m.websocketUpgradeRequested()
        #expect(r29)
        let r30 = m.websocketUpgradeRequested()
        #expect(!r30, "a second WebSocket is refused")
        let r31 = m.probeReceived()
        #expect(r31 == [.noop], "the pending GET is flushed with a noop")
        let r32 = m.pollRequestReceived()
        #expect(r32 == .answer([.noop]), "GETs after the probe are answered at once")
        let r33 = m.packetQueued(.message("queued"))
        #expect(r33 == .buffered)
        let r34 = m.upgradeReceived()
        #expect(r34 == .upgraded(answerPendingPoll: false, flush: [.message("queued")]))
        #expect(m.currentTransport == .websocket)
        let r35 = m.pollRequestReceived()
        #expect(r35 == .reject(.badRequest))
        let r36 = m.postReceived()
        #expect(r36 == .reject(.badRequest))
        let r37 = m.packetQueued(.message("x"))
        #expect(r37 == .writeWebSocket(.message("x")))
        let r38 = m.websocketUpgradeRequested()
        #expect(!r38)
    }

    @Test func failedUpgradeStaysOnPolling() {
        var m = EngineIOTransportStateMachine(transport: .polling, maxBufferedPackets: 10)
        let r39 = m.websocketUpgradeRequested()
        #expect(r39)
        let r40 = m.upgradeFailed()
        #expect(r40)
        #expect(m.currentTransport == .polling)
        #expect(!m.isUpgrading)
        let r41 = m.websocketUpgradeRequested()
        #expect(r41, "a later upgrade may try again")
    }

    @Test func postsCannotOverlap() {
        var m = EngineIOTransportStateMachine(transport: .polling, maxBufferedPackets: 10)
        let r42 = m.postReceived()
        #expect(r42 == .accept)
        let r43 = m.postReceived()
        #expect(r43 == .overlap)
        m.postFinished()
        let r44 = m.postReceived()
        #expect(r44 == .accept)
    }

    @Test func websocketSessionsRejectPolling() {
        var m = EngineIOTransportStateMachine(transport: .websocket, maxBufferedPackets: 10)
        let r45 = m.pollRequestReceived()
        #expect(r45 == .reject(.badRequest))
        let r46 = m.websocketUpgradeRequested()
        #expect(!r46)
        let r47 = m.closeRequested(byClient: false)
        #expect(r47?.closeWebSocket == true)
    }
}
