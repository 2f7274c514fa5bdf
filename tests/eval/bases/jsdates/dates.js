'use strict';
// Date helpers on ISO strings (YYYY-MM-DD).

function isLeapYear(y) {
  return y % 4 === 0;
}

function daysInMonth(y, m) {
  const days = [31, isLeapYear(y) ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
  return days[m - 1];
}

function addDays(iso, n) {
  const d = new Date(iso + 'T00:00:00Z');
  d.setUTCDate(d.getUTCDate() + n);
  return d.toISOString().slice(0, 10);
}

module.exports = { isLeapYear, daysInMonth, addDays };
