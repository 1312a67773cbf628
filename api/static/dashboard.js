// MaskWatch dashboard: draws the compliance chart from the page's JSON, keeps the job list live.
"use strict";

function drawComplianceChart() {
  const canvas = document.getElementById("compliance-chart");
  const source = document.getElementById("chart-data");
  if (!canvas || !source || typeof Chart === "undefined") return;
  const data = JSON.parse(source.textContent);
  const worst = new Set(data.worst);
  const seconds = canvas.dataset.kind === "seconds";
  const labels = seconds ? data.labels.map((s) => `${s.toFixed(1)} s`) : data.labels;
  new Chart(canvas, {
    data: {
      labels,
      datasets: [
        {
          type: "line",
          label: "compliance %",
          data: data.compliance_percent,
          yAxisID: "percent",
          borderColor: "#2f6fb0",
          spanGaps: false,
          pointRadius: data.labels.map((_, i) => (worst.has(i) ? 6 : 2)),
          pointBackgroundColor: data.labels.map((_, i) => (worst.has(i) ? "#c0392b" : "#2f6fb0")),
        },
        {
          type: "bar",
          label: "faces",
          data: data.faces,
          yAxisID: "faces",
          backgroundColor: "rgba(120, 120, 120, 0.25)",
        },
        // People (tracks) where the page has them: the camera chart, per bucket.
        ...(data.people_compliance_percent
          ? [
              {
                type: "line",
                label: "people compliance %",
                data: data.people_compliance_percent,
                yAxisID: "percent",
                borderColor: "#27865a",
                borderDash: [6, 4],
                spanGaps: false,
                pointRadius: 2,
              },
            ]
          : []),
      ],
    },
    options: {
      animation: false,
      responsive: true,
      maintainAspectRatio: false,
      interaction: { mode: "index", intersect: false },
      scales: {
        percent: { position: "left", min: 0, max: 100, title: { display: true, text: "compliance %" } },
        faces: { position: "right", beginAtZero: true, grid: { drawOnChartArea: false }, title: { display: true, text: "faces" } },
      },
    },
  });
}

function progressText(job) {
  return `${job.frames_done}/${job.frames_total === null ? "?" : job.frames_total}`;
}

function updateJobRow(row, job) {
  row.dataset.status = job.status;
  const badge = row.querySelector(".status .badge");
  badge.textContent = job.status;
  badge.className = `badge ${job.status}`;
  const bar = row.querySelector("progress");
  if (job.progress_percent === null) bar.removeAttribute("value");
  else bar.value = job.progress_percent;
  row.querySelector(".frames").textContent = progressText(job);
  row.querySelector(".faces").textContent = job.faces === null ? "-" : job.faces;
  row.querySelector(".compliance").textContent = job.compliance || "-";
  row.querySelector(".people").textContent = job.people === null ? "-" : job.people;
  row.querySelector(".people-compliance").textContent = job.people_compliance || "-";
}

function keepJobsLive() {
  const table = document.getElementById("jobs");
  if (!table) return;
  const unfinished = () =>
    [...table.querySelectorAll("tr[data-job]")].some((r) => ["queued", "running"].includes(r.dataset.status));
  const poll = async () => {
    if (!unfinished()) return;
    try {
      const response = await fetch(table.dataset.poll, { credentials: "same-origin" });
      if (response.ok) {
        const body = await response.json();
        for (const job of body.items) {
          const row = table.querySelector(`tr[data-job="${job.id}"]`);
          if (row) updateJobRow(row, job);
        }
      }
    } finally {
      setTimeout(poll, 2000);
    }
  };
  setTimeout(poll, 2000);
}

document.addEventListener("DOMContentLoaded", () => {
  drawComplianceChart();
  keepJobsLive();
});
