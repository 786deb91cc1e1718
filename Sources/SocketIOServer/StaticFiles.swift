import EngineIO
import EngineIOCore
import Foundation
import NIOCore
import NIOHTTP1

/// Files served by the executable: the directories given with `--static` (under `/static/`), the
/// socket.io client bundle given with `--client-bundle` (under the endpoint path, as the Node
/// server's `serveClient` does), and embedded pages. Loaded once at startup, so requests never
/// touch the disk.
struct StaticFiles: Sendable {
    private var files: [String: HTTPFallbackResponse] = [:]

    /// The most bytes of static files loaded at startup (a guard against pointing --static at `/`).
    static let maxTotalBytes = 64 << 20

    static func contentType(_ path: String) -> String {
        switch (path as NSString).pathExtension.lowercased() {
        case "html", "htm": return "text/html; charset=UTF-8"
        case "js", "mjs": return "application/javascript; charset=UTF-8"
        case "css": return "text/css; charset=UTF-8"
        case "json", "map": return "application/json"
        case "png": return "image/png"
        case "svg": return "image/svg+xml"
        case "ico": return "image/x-icon"
        default: return "application/octet-stream"
        }
    }

    mutating func add(path: String, body: ByteBuffer, contentType: String) {
        self.files[path] = HTTPFallbackResponse(
            status: .ok,
            headers: ["Content-Type": contentType, "Cache-Control": "public, max-age=60"],
            body: body
        )
    }

    /// Loads every regular file under `directory` as `/static/<relative path>`.
    mutating func addDirectory(_ directory: String) throws {
        let root = URL(fileURLWithPath: directory).standardizedFileURL
        guard let walker = FileManager.default.enumerator(at: root, includingPropertiesForKeys: [.isRegularFileKey])
        else { throw CocoaError(.fileReadNoSuchFile) }
        var total = self.files.values.reduce(0) { $0 + ($1.body?.readableBytes ?? 0) }
        for case let url as URL in walker {
            guard (try? url.resourceValues(forKeys: [.isRegularFileKey]).isRegularFile) == true else { continue }
            let relative = String(url.standardizedFileURL.path.dropFirst(root.path.count)).drop { $0 == "/" }
            let data = try Data(contentsOf: url)
            total += data.count
            guard total <= Self.maxTotalBytes else { throw CocoaError(.fileReadTooLarge) }
            let path = "/static/" + relative
            if self.files[path] == nil {
                self.add(path: path, body: ByteBuffer(bytes: data), contentType: Self.contentType(path))
            }
        }
    }

    /// Serves `file` at `<endpointPath>socket.io.min.js` and `<endpointPath>socket.io.js`.
    mutating func addClientBundle(_ file: String, endpointPath: String) throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: file))
        for name in ["socket.io.min.js", "socket.io.js"] {
            self.add(path: endpointPath + name, body: ByteBuffer(bytes: data), contentType: Self.contentType(name))
        }
    }

    var isEmpty: Bool { self.files.isEmpty }

    func response(for head: HTTPRequestHead) -> HTTPFallbackResponse? {
        self.files[String(EngineIOQuery.path(of: head.uri))]
    }
}
