/// A moment in UTC, split into calendar fields without Foundation (the proleptic Gregorian
/// calendar, Howard Hinnant's days-from-civil algorithm), and written the two ways JavaScript
/// writes dates that cross a cluster.
package struct UTCDate: Hashable, Sendable {
    package let year: Int64
    package let month: Int64
    package let day: Int64
    package let hour: Int64
    package let minute: Int64
    package let second: Int64
    package let millisecond: Int64
    /// 0 = Sunday.
    package let weekday: Int64

    /// The moment `milliseconds` after the Unix epoch.
    package init(milliseconds: Int64) {
        let days = milliseconds >= 0 ? milliseconds / 86_400_000 : (milliseconds - 86_399_999) / 86_400_000
        let inDay = milliseconds - days * 86_400_000
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let monthIndex = (5 * dayOfYear + 2) / 153
        self.day = dayOfYear - (153 * monthIndex + 2) / 5 + 1
        self.month = monthIndex < 10 ? monthIndex + 3 : monthIndex - 9
        self.year = yearOfEra + era * 400 + (self.month <= 2 ? 1 : 0)
        self.hour = inDay / 3_600_000
        self.minute = inDay / 60_000 % 60
        self.second = inDay / 1000 % 60
        self.millisecond = inDay % 1000
        // 1970-01-01 was a Thursday.
        self.weekday = ((days % 7) + 11) % 7
    }

    private static func pad(_ value: Int64, _ width: Int) -> String {
        let text = String(abs(value))
        return String(repeating: "0", count: max(0, width - text.count)) + text
    }

    /// `Date.prototype.toJSON`: `2026-12-06T04:27:30.123Z`.
    package var iso8601: String {
        let year =
            (0...9999).contains(self.year)
            ? Self.pad(self.year, 4) : (self.year < 0 ? "-" : "+") + Self.pad(self.year, 6)
        return "\(year)-\(Self.pad(self.month, 2))-\(Self.pad(self.day, 2))T\(Self.pad(self.hour, 2)):"
            + "\(Self.pad(self.minute, 2)):\(Self.pad(self.second, 2)).\(Self.pad(self.millisecond, 3))Z"
    }

    private static let weekdays = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
    private static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    /// `String(new Date())` on a server in UTC, as Node puts in `handshake.time`:
    /// `Sun Dec 06 2026 04:27:30 GMT+0000 (Coordinated Universal Time)`.
    package var javaScriptString: String {
        "\(Self.weekdays[Int(self.weekday)]) \(Self.months[Int(self.month) - 1]) \(Self.pad(self.day, 2)) "
            + "\(Self.pad(self.year, 4)) \(Self.pad(self.hour, 2)):\(Self.pad(self.minute, 2)):\(Self.pad(self.second, 2)) "
            + "GMT+0000 (Coordinated Universal Time)"
    }
}
