"""The pool of tool schemas the demo model learns to call (32 tools, every JSON-schema type).

Each `Tool` carries its OpenAI-style schema plus what the data generator needs: how to draw each
argument (`Param.draw`), request phrasings whose `{placeholders}` name the arguments they set, the
tool's result (`result_key`, `result`), and an answer phrasing that uses the result `{r}`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from .values import Values

Draw = Callable[[Values], Any]


@dataclass
class Param:
    type: str  # string | integer | number | boolean | enum | array
    draw: Draw
    description: str
    enum: list[str] | None = None
    items: str | None = None  # item type of an array
    say: tuple[str, str] | None = None  # how a request words a boolean: (if true, if false)

    def schema(self) -> dict:
        if self.type == "enum":
            return {"type": "string", "enum": list(self.enum), "description": self.description}
        if self.type == "array":
            return {"type": "array", "items": {"type": self.items}, "description": self.description}
        return {"type": self.type, "description": self.description}

    def words(self, value: Any) -> str:
        """How a user request spells this argument's value."""
        if self.type == "boolean":
            return self.say[0] if value else self.say[1]
        if self.type == "array":
            parts = [str(x) for x in value]
            return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
        return str(value)


@dataclass
class Tool:
    name: str
    description: str
    params: dict[str, Param]
    asks: list[str]
    result_key: str
    result: Draw
    answer: str
    required: list[str] = field(default_factory=list)

    def schema(self) -> dict:
        req = self.required or [k for k in self.params if all("{" + k + "}" in a for a in self.asks)]
        return {"type": "function", "function": {
            "name": self.name, "description": self.description,
            "parameters": {"type": "object", "properties": {k: p.schema() for k, p in self.params.items()},
                           "required": req}}}


def s(pool: str) -> Draw:
    return lambda v: v.pick(pool)


def i(lo: int, hi: int) -> Draw:
    return lambda v: v.integer(lo, hi)


def f(lo: int, hi: int) -> Draw:
    return lambda v: v.decimal(lo, hi)


def e(options: list[str]) -> Draw:
    return lambda v: v.choice(options)


def b() -> Draw:
    return lambda v: v.choice([True, False])


def word_file(ext: str) -> Draw:
    return lambda v: f"{v.pick('word')}.{ext}"


def email() -> Draw:
    return lambda v: f"{v.pick('person').lower()}@example.com"


UNITS_T = ["celsius", "fahrenheit"]
CURRENCIES = ["USD", "EUR", "GBP", "JPY", "CHF", "CAD"]
LENGTHS = ["meters", "feet", "miles", "kilometers"]
PRIORITY = ["low", "medium", "high"]
CONDITIONS = ["sunny", "cloudy", "rainy", "windy", "foggy", "snowy"]

P = Param
TOOLS: list[Tool] = [
    Tool("get_weather", "Get the current weather for a city",
         {"city": P("string", s("city"), "City name"), "unit": P("enum", e(UNITS_T), "Temperature unit", UNITS_T)},
         ["What is the weather in {city}?", "How warm is it in {city} in {unit}?"],
         "temperature", i(-20, 45), "It is {r} degrees in {city} right now."),
    Tool("get_forecast", "Get the weather forecast for the next days",
         {"city": P("string", s("city"), "City name"), "days": P("integer", i(1, 14), "Number of days")},
         ["Give me the {days} day forecast for {city}.", "What will the weather be in {city} over the next {days} days?"],
         "outlook", e(CONDITIONS), "The forecast for {city} is mostly {r}."),
    Tool("convert_currency", "Convert an amount between currencies",
         {"amount": P("number", f(1, 999), "Amount to convert"), "from_currency": P("enum", e(CURRENCIES), "Source currency", CURRENCIES),
          "to_currency": P("enum", e(CURRENCIES), "Target currency", CURRENCIES)},
         ["Convert {amount} {from_currency} to {to_currency}.", "How much is {amount} {from_currency} in {to_currency}?"],
         "converted", f(1, 999), "That is {r} {to_currency}."),
    Tool("convert_length", "Convert a length between units",
         {"value": P("number", f(1, 999), "Length to convert"), "from_unit": P("enum", e(LENGTHS), "Source unit", LENGTHS),
          "to_unit": P("enum", e(LENGTHS), "Target unit", LENGTHS)},
         ["Convert {value} {from_unit} to {to_unit}.", "How many {to_unit} is {value} {from_unit}?"],
         "result", f(1, 999), "{value} {from_unit} is {r} {to_unit}."),
    Tool("convert_temperature", "Convert a temperature between scales",
         {"degrees": P("integer", i(-40, 120), "Temperature"), "to_unit": P("enum", e(UNITS_T), "Target scale", UNITS_T)},
         ["Convert {degrees} degrees to {to_unit}.", "What is {degrees} degrees in {to_unit}?"],
         "result", i(-40, 250), "That is {r} degrees {to_unit}."),
    Tool("calculator", "Evaluate an arithmetic expression",
         {"expression": P("string", lambda v: f"{v.integer(2, 999)} * {v.integer(2, 99)}", "Expression to evaluate")},
         ["Use the calculator to evaluate {expression}.", "Please compute {expression} with the calculator."],
         "value", i(4, 99999), "The calculator says {r}."),
    Tool("read_file", "Read a text file",
         {"path": P("string", word_file("txt"), "File path"), "max_lines": P("integer", i(1, 500), "Lines to read at most")},
         ["Read the file {path}.", "Show me the first {max_lines} lines of {path}."],
         "first_line", s("word"), "The file {path} starts with the word {r}."),
    Tool("search_files", "Search files for a keyword",
         {"query": P("string", s("word"), "Keyword"), "folder": P("string", lambda v: "/home/" + v.pick("person").lower(), "Folder"),
          "recursive": P("boolean", b(), "Search subfolders", say=("including subfolders", "without subfolders"))},
         ["Search {folder} for {query}, {recursive}.", "Find files mentioning {query} in {folder}."],
         "matches", i(0, 300), "I found {r} files mentioning {query}."),
    Tool("write_file", "Write text to a file",
         {"path": P("string", word_file("md"), "File path"), "text": P("string", s("word"), "Text to write"),
          "append": P("boolean", b(), "Append instead of overwrite", say=("appending", "overwriting"))},
         ["Write {text} to {path}, {append}.", "Put the word {text} into {path}."],
         "bytes_written", i(1, 4000), "Done: {r} bytes written to {path}."),
    Tool("delete_file", "Delete a file",
         {"path": P("string", word_file("tmp"), "File path")},
         ["Delete the file {path}.", "Please remove {path}."],
         "status", e(["deleted", "missing"]), "The file {path} is {r}."),
    Tool("list_directory", "List the files in a directory",
         {"path": P("string", lambda v: "/data/" + v.pick("word"), "Directory"), "show_hidden": P("boolean", b(), "Include hidden files", say=("with hidden files", "without hidden files"))},
         ["List the files in {path}, {show_hidden}.", "What is in the directory {path}?"],
         "count", i(0, 900), "The directory {path} holds {r} files."),
    Tool("create_event", "Create a calendar event",
         {"title": P("string", s("word"), "Event title"), "date": P("string", lambda v: v.date(), "Date, YYYY-MM-DD"),
          "duration_minutes": P("integer", i(5, 240), "Length in minutes")},
         ["Create an event called {title} on {date} for {duration_minutes} minutes.", "Add {title} to my calendar on {date}."],
         "event_id", i(1000, 99999), "The event {title} is booked with id {r}."),
    Tool("list_events", "List the calendar events of a day",
         {"date": P("string", lambda v: v.date(), "Date, YYYY-MM-DD")},
         ["What is on my calendar on {date}?", "List my events for {date}."],
         "count", i(0, 40), "You have {r} events on {date}."),
    Tool("send_email", "Send an email",
         {"to": P("array", lambda v: [f"{p.lower()}@example.com" for p in v.pick_many("person", v.rng.randint(1, 2))], "Recipients", items="string"),
          "subject": P("string", s("word"), "Subject line")},
         ["Send an email to {to} with the subject {subject}.", "Email {to} about {subject}."],
         "message_id", i(1000, 99999), "The email about {subject} was sent, message id {r}."),
    Tool("get_stock_price", "Get the latest price of a stock",
         {"symbol": P("enum", e(["AAPL", "MSFT", "GOOG", "AMZN", "NVDA", "TSLA", "META"]), "Ticker", ["AAPL", "MSFT", "GOOG", "AMZN", "NVDA", "TSLA", "META"])},
         ["What is the stock price of {symbol}?", "How much does one {symbol} share cost?"],
         "price", f(10, 999), "One {symbol} share costs {r} dollars."),
    Tool("translate_text", "Translate a word into another language",
         {"text": P("string", s("word"), "Word to translate"), "target_language": P("enum", e(["French", "German", "Spanish", "Italian", "Japanese"]), "Language", ["French", "German", "Spanish", "Italian", "Japanese"])},
         ["Translate {text} into {target_language}.", "How do you say {text} in {target_language}?"],
         "translation", s("word"), "In {target_language} that is {r}."),
    Tool("set_timer", "Start a countdown timer",
         {"minutes": P("integer", i(1, 180), "Minutes"), "label": P("string", s("word"), "Timer label")},
         ["Set a timer for {minutes} minutes called {label}.", "Start a {minutes} minute timer."],
         "timer_id", i(1, 9999), "Timer {r} is running for {minutes} minutes."),
    Tool("set_reminder", "Set a reminder",
         {"text": P("string", s("word"), "What to remember"), "date": P("string", lambda v: v.date(), "Date, YYYY-MM-DD"),
          "priority": P("enum", e(PRIORITY), "Priority", PRIORITY)},
         ["Remind me about {text} on {date}.", "Set a {priority} priority reminder for {text} on {date}."],
         "reminder_id", i(1, 9999), "Reminder {r} is set for {date}."),
    Tool("get_contact", "Look up a contact's phone number",
         {"name": P("string", s("person"), "Contact name")},
         ["What is {name}'s phone number?", "Look up the contact {name}."],
         "phone", i(1000000, 9999999), "{name}'s number is {r}."),
    Tool("add_contact", "Add a contact",
         {"name": P("string", s("person"), "Contact name"), "phone": P("string", lambda v: str(v.integer(1000000, 9999999)), "Phone number"),
          "favorite": P("boolean", b(), "Mark as favorite", say=("as a favorite", "not as a favorite"))},
         ["Add {name} with phone {phone} to my contacts, {favorite}.", "Save {name} as a contact with number {phone}."],
         "contact_id", i(1, 9999), "{name} is saved as contact {r}."),
    Tool("get_time", "Get the local time in a city",
         {"city": P("string", s("city"), "City name")},
         ["What time is it in {city}?", "Tell me the local time in {city}."],
         "hour", i(0, 23), "In {city} it is {r} o'clock."),
    Tool("get_population", "Get the population of a city",
         {"city": P("string", s("city"), "City name"), "year": P("integer", i(1950, 2025), "Year")},
         ["How many people live in {city}?", "What was the population of {city} in {year}?"],
         "population", i(10000, 9999999), "{city} has {r} inhabitants."),
    Tool("book_flight", "Book a flight",
         {"origin": P("string", s("city"), "Departure city"), "destination": P("string", s("city"), "Arrival city"),
          "date": P("string", lambda v: v.date(), "Date, YYYY-MM-DD"), "passengers": P("integer", i(1, 9), "Number of passengers")},
         ["Book a flight from {origin} to {destination} on {date} for {passengers} passengers.", "Book me a flight from {origin} to {destination} on {date}."],
         "booking_code", i(100000, 999999), "Your flight to {destination} is booked, code {r}."),
    Tool("find_restaurant", "Find restaurants in a city",
         {"city": P("string", s("city"), "City name"), "cuisine": P("enum", e(["italian", "thai", "indian", "mexican", "french"]), "Cuisine", ["italian", "thai", "indian", "mexican", "french"]),
          "max_price": P("integer", i(5, 300), "Highest price per person")},
         ["Find a {cuisine} restaurant in {city} under {max_price} dollars.", "Where can I eat {cuisine} food in {city}?"],
         "results", i(0, 500), "I found {r} {cuisine} restaurants in {city}."),
    Tool("get_distance", "Distance between two cities in kilometers",
         {"origin": P("string", s("city"), "First city"), "destination": P("string", s("city"), "Second city")},
         ["How far is {origin} from {destination}?", "What is the distance between {origin} and {destination}?"],
         "kilometers", i(10, 19999), "{origin} is {r} kilometers from {destination}."),
    Tool("create_task", "Create a task in the task list",
         {"title": P("string", s("word"), "Task title"), "priority": P("enum", e(PRIORITY), "Priority", PRIORITY),
          "tags": P("array", lambda v: v.pick_many("word", v.rng.randint(1, 3)), "Tags", items="string")},
         ["Create a {priority} priority task {title} tagged {tags}.", "Add a task called {title} with priority {priority}."],
         "task_id", i(1, 99999), "Task {title} was created with id {r}."),
    Tool("get_exchange_rate", "Get the exchange rate between two currencies",
         {"base": P("enum", e(CURRENCIES), "Base currency", CURRENCIES), "quote": P("enum", e(CURRENCIES), "Quote currency", CURRENCIES)},
         ["What is the exchange rate from {base} to {quote}?", "How many {quote} do I get for one {base}?"],
         "rate", f(0, 199), "One {base} buys {r} {quote}."),
    Tool("roll_dice", "Roll dice",
         {"count": P("integer", i(1, 20), "Number of dice"), "sides": P("integer", i(4, 100), "Sides per die")},
         ["Roll {count} dice with {sides} sides.", "Roll {count} dice for me."],
         "total", i(1, 2000), "You rolled a total of {r}."),
    Tool("average", "Average a list of integers",
         {"numbers": P("array", lambda v: [v.integer(1, 999) for _ in range(v.rng.randint(2, 4))], "Numbers", items="integer")},
         ["What is the average of {numbers}?", "Average these numbers: {numbers}."],
         "mean", f(1, 999), "The average is {r}."),
    Tool("get_news", "Get news headlines on a topic",
         {"topic": P("string", s("word"), "Topic"), "limit": P("integer", i(1, 50), "Headlines to return")},
         ["Get {limit} news headlines about {topic}.", "Any news about {topic}?"],
         "headline_count", i(0, 999), "There are {r} headlines about {topic}."),
    Tool("play_music", "Play a playlist",
         {"playlist": P("string", s("word"), "Playlist name"), "shuffle": P("boolean", b(), "Shuffle the order", say=("shuffled", "in order")),
          "volume": P("integer", i(1, 100), "Volume percent")},
         ["Play the playlist {playlist} {shuffle} at volume {volume}.", "Play my {playlist} playlist, {shuffle}."],
         "track_count", i(1, 400), "Playing {playlist}: {r} tracks."),
    Tool("check_order", "Check the status of an order",
         {"order_id": P("integer", i(10000, 999999), "Order number")},
         ["Where is my order {order_id}?", "Check the status of order {order_id}."],
         "status", e(["shipped", "packed", "delivered", "delayed"]), "Order {order_id} is {r}."),
    Tool("set_thermostat", "Set the home thermostat",
         {"room": P("enum", e(["kitchen", "bedroom", "office", "hall"]), "Room", ["kitchen", "bedroom", "office", "hall"]),
          "temperature": P("number", f(10, 30), "Target temperature in celsius")},
         ["Set the {room} thermostat to {temperature} degrees.", "Make the {room} {temperature} degrees."],
         "status", e(["ok", "heating", "cooling"]), "The {room} thermostat is set: {r}."),
]

BY_NAME = {t.name: t for t in TOOLS}
